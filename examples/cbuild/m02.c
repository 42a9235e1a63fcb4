/* module 2: a little arithmetic so the compiler has work to do */
#include <stdint.h>
#include <string.h>
#include "mods.h"

static uint64_t mix2(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return x + 2;
}

uint64_t table2(uint64_t seed) {
    uint64_t t[64];
    memset(t, 0, sizeof t);
    for (int k = 0; k < 64; k++) t[k] = mix2(seed + (uint64_t)k);
    uint64_t acc = 0;
    for (int r = 0; r < 8; r++)
        for (int k = 0; k < 64; k++) acc += t[(k * 5 + r) % 64] ^ (acc << 1);
    return acc;
}
