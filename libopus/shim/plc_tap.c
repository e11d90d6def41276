/* opus-dred: a tap on the neural-PLC calls of libopus' decoder.
 *
 * Compiled together with dred_shim.c into a second shared object whose link redirects libopus' own calls of
 * the neural PLC (dnn/lpcnet_plc.c) through the functions below (GNU ld -wrap): lpcnet_plc_update and
 * lpcnet_plc_conceal from silk/PLC.c and celt/celt_decoder.c, lpcnet_plc_fec_add, lpcnet_plc_fec_clear and
 * lpcnet_plc_reset from src/opus_decoder.c. Each one reports the call to a hook set from Python (the
 * LPCNetPLCState's address, the samples or features, and eight counters of the state as they were before the
 * call), then runs libopus' function. lpcnet_plc_conceal reports after libopus' concealment has written its
 * 160 samples, and the hook may overwrite them: the decoder then carries on (SILK's LPC state and glue, CELT's
 * resampling and cross-fade) with the hook's samples. Without a hook every call goes straight through.
 *
 * Part of opus-dred (BSD-3-Clause).  This file calls libopus; it contains no libopus code.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>

#include "opus.h"
#include "lpcnet.h"
#include "lpcnet_private.h"

#define SHIM_API __attribute__((visibility("default")))

enum { TAP_UPDATE = 0, TAP_CONCEAL = 1, TAP_FEC_ADD = 2, TAP_FEC_CLEAR = 3, TAP_RESET = 4 };

/* kind, state, samples (update, conceal; else NULL), features (fec_add; NULL for a frame DRED does not
 * cover), counters before the call: blend, loss_count, analysis_gap, analysis_pos, predict_pos,
 * fec_read_pos, fec_fill_pos, fec_skip. */
typedef void (*shim_tap_hook)(int kind, LPCNetPLCState *st, opus_int16 *pcm, const float *features,
                              const int *counters);

static shim_tap_hook tap_hook = NULL;

/* Bump when the exported interface of this file changes (Python checks it). */
SHIM_API int shim_tap_abi_version(void) { return 1; }

SHIM_API void shim_tap_set(shim_tap_hook hook) { tap_hook = hook; }

/* sizeof(LPCNetPLCState) as this build lays it out (TappedOracle.plc_state_size). */
SHIM_API int shim_tap_sizeof_plc(void) { return (int)sizeof(LPCNetPLCState); }

static void tap_counters(const LPCNetPLCState *st, int *c)
{
   c[0] = st->blend; c[1] = st->loss_count; c[2] = st->analysis_gap; c[3] = st->analysis_pos;
   c[4] = st->predict_pos; c[5] = st->fec_read_pos; c[6] = st->fec_fill_pos; c[7] = st->fec_skip;
}

int __real_lpcnet_plc_update(LPCNetPLCState *st, opus_int16 *pcm);
int __real_lpcnet_plc_conceal(LPCNetPLCState *st, opus_int16 *pcm);
void __real_lpcnet_plc_fec_add(LPCNetPLCState *st, const float *features);
void __real_lpcnet_plc_fec_clear(LPCNetPLCState *st);
void __real_lpcnet_plc_reset(LPCNetPLCState *st);

int __wrap_lpcnet_plc_update(LPCNetPLCState *st, opus_int16 *pcm)
{
   if (tap_hook) {
      int c[8];
      tap_counters(st, c);
      tap_hook(TAP_UPDATE, st, pcm, NULL, c);
   }
   return __real_lpcnet_plc_update(st, pcm);
}

int __wrap_lpcnet_plc_conceal(LPCNetPLCState *st, opus_int16 *pcm)
{
   int c[8];
   int ret;
   tap_counters(st, c);
   ret = __real_lpcnet_plc_conceal(st, pcm);
   if (tap_hook) tap_hook(TAP_CONCEAL, st, pcm, NULL, c);
   return ret;
}

void __wrap_lpcnet_plc_fec_add(LPCNetPLCState *st, const float *features)
{
   if (tap_hook) {
      int c[8];
      tap_counters(st, c);
      tap_hook(TAP_FEC_ADD, st, NULL, features, c);
   }
   __real_lpcnet_plc_fec_add(st, features);
}

void __wrap_lpcnet_plc_fec_clear(LPCNetPLCState *st)
{
   if (tap_hook) {
      int c[8];
      tap_counters(st, c);
      tap_hook(TAP_FEC_CLEAR, st, NULL, NULL, c);
   }
   __real_lpcnet_plc_fec_clear(st);
}

void __wrap_lpcnet_plc_reset(LPCNetPLCState *st)
{
   if (tap_hook) {
      int c[8];
      tap_counters(st, c);
      tap_hook(TAP_RESET, st, NULL, NULL, c);
   }
   __real_lpcnet_plc_reset(st);
}
