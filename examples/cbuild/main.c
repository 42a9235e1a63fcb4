#include <stdio.h>
#include "mods.h"
int main(void) {
    uint64_t s = 1;
    s = table0(s);
    s = table1(s);
    s = table2(s);
    s = table3(s);
    s = table4(s);
    s = table5(s);
    s = table6(s);
    s = table7(s);
    s = table8(s);
    s = table9(s);
    s = table10(s);
    s = table11(s);
    s = table12(s);
    s = table13(s);
    s = table14(s);
    s = table15(s);
    printf("%llu\n", (unsigned long long)s);
    return 0;
}
