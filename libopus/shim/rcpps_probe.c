/* Measures this CPU's RCPPS (the x86 approximate reciprocal that libopus' AVX2/SSE activations use).
 *
 * Written for opus-dred (BSD-3-Clause); no libopus code. Prints, as little-endian uint32 on stdout,
 * 4096 results RCPPS(1 + m/4096) for m = 0..4095 (inputs with mantissa bits 22..11 = m, lower bits 0),
 * then the same 4096 inputs with their lower 11 mantissa bits set, then 4096 inputs scaled by 2^10,
 * so that the reader can check the two assumptions of the emulated tables: the result depends on the top
 * 12 mantissa bits only, and scaling the input by 2^e scales the result by 2^-e.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xmmintrin.h>

static uint32_t rcp_bits(uint32_t in)
{
    float x, r;
    uint32_t out;
    memcpy(&x, &in, sizeof x);
    r = _mm_cvtss_f32(_mm_rcp_ps(_mm_set1_ps(x)));
    memcpy(&out, &r, sizeof out);
    return out;
}

int main(void)
{
    static uint32_t res[3 * 4096];
    for (uint32_t m = 0; m < 4096; m++) {
        res[m] = rcp_bits(0x3F800000u | (m << 11));
        res[4096 + m] = rcp_bits(0x3F800000u | (m << 11) | 0x7FFu);
        res[8192 + m] = rcp_bits(((127u + 10u) << 23) | (m << 11));
    }
    for (int i = 0; i < 3 * 4096; i++) {
        unsigned char b[4] = {(unsigned char)res[i], (unsigned char)(res[i] >> 8), (unsigned char)(res[i] >> 16),
                              (unsigned char)(res[i] >> 24)};
        fwrite(b, 1, 4, stdout);
    }
    return 0;
}
