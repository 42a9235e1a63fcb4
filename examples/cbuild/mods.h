#include <stdint.h>
uint64_t table0(uint64_t seed);
uint64_t table1(uint64_t seed);
uint64_t table2(uint64_t seed);
uint64_t table3(uint64_t seed);
uint64_t table4(uint64_t seed);
uint64_t table5(uint64_t seed);
uint64_t table6(uint64_t seed);
uint64_t table7(uint64_t seed);
uint64_t table8(uint64_t seed);
uint64_t table9(uint64_t seed);
uint64_t table10(uint64_t seed);
uint64_t table11(uint64_t seed);
uint64_t table12(uint64_t seed);
uint64_t table13(uint64_t seed);
uint64_t table14(uint64_t seed);
uint64_t table15(uint64_t seed);
