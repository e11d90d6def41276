/* opus-dred oracle shim.
 *
 * A thin C layer compiled against ONE libopus source tree (its own headers, so every struct layout
 * is that version's) and linked with that tree's static libopus.a into one shared object.  The
 * Python side (opus_dred.libopus._oracle) loads it with ctypes.  It exposes:
 *   - sizes and dimensions as the compiler sees them (OpusDRED, its fields, DRED constants);
 *   - copy-in/copy-out of OpusDRED fields, so Python never assumes a layout;
 *   - integer-argument wrappers for the variadic encoder/decoder ctl calls;
 *   - internals libopus does not export: the range coder (celt/entenc.c, celt/entdec.c), the
 *     Laplace coders (celt/laplace.c), the internal packet parser (src/opus.c:opus_packet_parse_impl),
 *     the padding extension parser/generator (src/extensions.c), the DRED payload decoder
 *     (dnn/dred_decoder.c:dred_ec_decode), and the DRED half of the encoder: the DREDEnc state
 *     (dnn/dred_encoder.c), LPCNet feature extraction (dnn/lpcnet_enc.c) and PitchDNN; the listening side:
 *     the FARGAN vocoder (dnn/fargan.c), Burg's cepstral analysis (dnn/freq.c, over dnn/burg.c) and the neural PLC
 *     (dnn/lpcnet_plc.c) on caller-owned state.
 *
 * Part of opus-dred (BSD-3-Clause).  This file calls libopus; it contains no libopus code.
 *
 * Compile-time switches (set by oracle.py after looking at the source tree):
 *   SHIM_EXT_ITERATOR  1 when src/opus_private.h declares the extension iterator (libopus >= 1.6),
 *                      whose extension parse/count/generate take an extra nb_frames argument.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <string.h>

#include "opus.h"
#include "opus_private.h"
#include "entcode.h"
#include "entenc.h"
#include "entdec.h"
#include "laplace.h"
#include "dred_config.h"
#include "dred_rdovae_constants.h"
#include "dred_decoder.h"
#include "dred_encoder.h"
#include "lpcnet_private.h"
#include "pitchdnn.h"
#include "fargan.h"
#include "lpcnet.h"
#include "burg.h"
#include "cpu_support.h"

#ifndef SHIM_EXT_ITERATOR
#define SHIM_EXT_ITERATOR 0
#endif

#define SHIM_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------------------------------------- */
/* Layout and constants                                                                           */

#define SHIM_FIELD_LEN(type, field) ((int)(sizeof(((type *)0)->field) / sizeof(((type *)0)->field[0])))

/* Bump when the exported interface changes (Python checks it). */
SHIM_API int shim_abi_version(void) { return 3; }

/* Fills out[0..n) with:
 *  0 DRED_EXPERIMENTAL_VERSION      1 DRED_LATENT_DIM         2 DRED_STATE_DIM
 *  3 DRED_NUM_REDUNDANCY_FRAMES     4 DRED_MAX_LATENTS        5 DRED_NUM_FEATURES
 *  6 sizeof(OpusDRED)               7 len(fec_features)       8 len(state)
 *  9 len(latents)                  10 latent stride           11 offsetof fec_features
 * 12 offsetof state                13 offsetof latents        14 offsetof nb_latents
 * 15 offsetof process_stage        16 offsetof dred_offset    17 SHIM_EXT_ITERATOR
 * 18 DRED_EXTENSION_ID             19 DRED_EXPERIMENTAL_BYTES 20 sizeof(ec_ctx)
 * 21 DRED_NUM_QUANTIZATION_LEVELS
 * Returns the number of values written. */
SHIM_API int shim_layout(int *out, int n)
{
   int v[22];
   int i;
   v[0] = DRED_EXPERIMENTAL_VERSION;
   v[1] = DRED_LATENT_DIM;
   v[2] = DRED_STATE_DIM;
   v[3] = DRED_NUM_REDUNDANCY_FRAMES;
   v[4] = DRED_MAX_LATENTS;
   v[5] = DRED_NUM_FEATURES;
   v[6] = (int)sizeof(OpusDRED);
   v[7] = SHIM_FIELD_LEN(OpusDRED, fec_features);
   v[8] = SHIM_FIELD_LEN(OpusDRED, state);
   v[9] = SHIM_FIELD_LEN(OpusDRED, latents);
   v[10] = SHIM_FIELD_LEN(OpusDRED, latents) / (DRED_NUM_REDUNDANCY_FRAMES / 2);
   v[11] = (int)offsetof(OpusDRED, fec_features);
   v[12] = (int)offsetof(OpusDRED, state);
   v[13] = (int)offsetof(OpusDRED, latents);
   v[14] = (int)offsetof(OpusDRED, nb_latents);
   v[15] = (int)offsetof(OpusDRED, process_stage);
   v[16] = (int)offsetof(OpusDRED, dred_offset);
   v[17] = SHIM_EXT_ITERATOR;
   v[18] = DRED_EXTENSION_ID;
   v[19] = DRED_EXPERIMENTAL_BYTES;
   v[20] = (int)sizeof(ec_ctx);
   v[21] = DRED_NUM_QUANTIZATION_LEVELS;
   for (i = 0; i < n && i < 22; i++) out[i] = v[i];
   return i;
}

/* ---------------------------------------------------------------------------------------------- */
/* OpusDRED field access                                                                          */

/* ints: nb_latents, process_stage, dred_offset.  Any output pointer may be NULL. */
SHIM_API void shim_dred_get(const OpusDRED *d, int *ints, float *state, float *latents, float *features)
{
   if (ints) {
      ints[0] = d->nb_latents;
      ints[1] = d->process_stage;
      ints[2] = d->dred_offset;
   }
   if (state) memcpy(state, d->state, sizeof(d->state));
   if (latents) memcpy(latents, d->latents, sizeof(d->latents));
   if (features) memcpy(features, d->fec_features, sizeof(d->fec_features));
}

/* Overwrites an OpusDRED from Python.  Any input pointer may be NULL (field left as is);
 * `latents` and `features` are the whole arrays (len(latents), len(fec_features) floats). */
SHIM_API void shim_dred_set(OpusDRED *d, const int *ints, const float *state, const float *latents,
                            const float *features)
{
   if (ints) {
      d->nb_latents = ints[0];
      d->process_stage = ints[1];
      d->dred_offset = ints[2];
   }
   if (state) memcpy(d->state, state, sizeof(d->state));
   if (latents) memcpy(d->latents, latents, sizeof(d->latents));
   if (features) memcpy(d->fec_features, features, sizeof(d->fec_features));
}

/* The RDO-VAE decoder (dnn/dred_rdovae_dec.c:DRED_rdovae_decode_all) on arbitrary state and
 * latents, reached through the public opus_dred_process so that the decoder object's model and
 * CPU dispatch are the ones libopus itself uses.  `latents` holds nb_latents rows of the version's
 * latent stride.  Writes 4*nb_latents*DRED_NUM_FEATURES floats.  Returns opus_dred_process's code. */
SHIM_API int shim_rdovae_decode(OpusDREDDecoder *dec, const float *state, const float *latents,
                                int nb_latents, float *features)
{
   OpusDRED *d;
   int err;
   int stride = SHIM_FIELD_LEN(OpusDRED, latents) / (DRED_NUM_REDUNDANCY_FRAMES / 2);
   if (nb_latents < 0 || nb_latents > DRED_NUM_REDUNDANCY_FRAMES / 2) return OPUS_BAD_ARG;
   d = opus_dred_alloc(&err);
   if (d == NULL) return err;
   memset(d, 0, sizeof(*d));
   memcpy(d->state, state, sizeof(d->state));
   memcpy(d->latents, latents, (size_t)nb_latents * stride * sizeof(float));
   d->nb_latents = nb_latents;
   d->process_stage = 1;
   d->dred_offset = 0;
   err = opus_dred_process(dec, d, d);
   if (err == OPUS_OK)
      memcpy(features, d->fec_features, (size_t)4 * nb_latents * DRED_NUM_FEATURES * sizeof(float));
   opus_dred_free(d);
   return err;
}

/* dnn/dred_decoder.c:dred_ec_decode, called directly on a raw range-coded payload (after the 'D' and
 * version bytes).  Returns its result (number of latents). */
SHIM_API int shim_dred_ec_decode(OpusDRED *d, const unsigned char *bytes, int num_bytes,
                                 int min_feature_frames, int dred_frame_offset)
{
   return dred_ec_decode(d, bytes, num_bytes, min_feature_frames, dred_frame_offset);
}

/* The DRED header fields that dred_ec_decode keeps in locals (q0, dQ, qmax, offsets), re-read with
 * this version's range decoder following the syntax of dnn/dred_decoder.c:dred_ec_decode.
 * out: q0, dQ, extra_flag, extra_value (before the *32), off, qmax, ec_tell after the header,
 *      ec_tell_frac after the header, error flag.  Returns 9. */
SHIM_API int shim_dred_header(const unsigned char *bytes, int num_bytes, int *out)
{
   ec_dec ec;
   int q0, dq, flag, extra = 0, off, qmax = 15;
   ec_dec_init(&ec, (unsigned char *)bytes, (opus_uint32)num_bytes);
   q0 = (int)ec_dec_uint(&ec, 16);
   dq = (int)ec_dec_uint(&ec, 8);
   flag = (int)ec_dec_uint(&ec, 2);
   if (flag) extra = (int)ec_dec_uint(&ec, 256);
   off = (int)ec_dec_uint(&ec, 32);
   if (q0 < 14 && dq > 0) {
      int nvals = 14 - q0;
      int ft = 2 * nvals;
      int s = (int)ec_decode(&ec, (unsigned)ft);
      if (s >= nvals) {
         qmax = q0 + 1 + (s - nvals);
         ec_dec_update(&ec, (unsigned)s, (unsigned)s + 1, (unsigned)ft);
      } else {
         ec_dec_update(&ec, 0, (unsigned)nvals, (unsigned)ft);
      }
   }
   out[0] = q0;
   out[1] = dq;
   out[2] = flag;
   out[3] = extra;
   out[4] = off;
   out[5] = qmax;
   out[6] = ec_tell(&ec);
   out[7] = (int)ec_tell_frac(&ec);
   out[8] = ec_get_error(&ec);
   return 9;
}

/* ---------------------------------------------------------------------------------------------- */
/* ctl wrappers (the ctl functions are variadic; ctypes calls these fixed-signature ones)          */

SHIM_API int shim_enc_set(OpusEncoder *st, int request, int value) { return opus_encoder_ctl(st, request, value); }
SHIM_API int shim_enc_get(OpusEncoder *st, int request, opus_int32 *value) { return opus_encoder_ctl(st, request, value); }
SHIM_API int shim_enc_get_u32(OpusEncoder *st, int request, opus_uint32 *value) { return opus_encoder_ctl(st, request, value); }
SHIM_API int shim_dec_set(OpusDecoder *st, int request, int value) { return opus_decoder_ctl(st, request, value); }
SHIM_API int shim_dec_get(OpusDecoder *st, int request, opus_int32 *value) { return opus_decoder_ctl(st, request, value); }
SHIM_API int shim_dec_get_u32(OpusDecoder *st, int request, opus_uint32 *value) { return opus_decoder_ctl(st, request, value); }
SHIM_API int shim_dec_reset(OpusDecoder *st) { return opus_decoder_ctl(st, OPUS_RESET_STATE); }

/* ---------------------------------------------------------------------------------------------- */
/* Range coder operation runner                                                                   */

/* Operation kinds; params a, b, c per op; `tab8`/`tab16` hold ICDF tables addressed by `a` (offset)
 * for the ICDF kinds.
 *   kind  encoder                                  decoder (value returned in values[i])
 *   0     ec_enc_uint(val=a, ft=b)                 ec_dec_uint(ft=b)
 *   1     ec_encode(fl=a, fh=b, ft=c)              ec_decode(ft=c), then ec_dec_update(a, b, c)
 *   2     ec_enc_bits(val=a, nbits=b)              ec_dec_bits(nbits=b)
 *   3     ec_enc_icdf(sym=v, tab8+a, ftb=b)        ec_dec_icdf(tab8+a, ftb=b)
 *   4     ec_enc_icdf16(sym=v, tab16+a, ftb=b)     ec_dec_icdf16(tab16+a, ftb=b)
 *   5     ec_laplace_encode_p0(val=v, p0=a, d=b)   ec_laplace_decode_p0(p0=a, decay=b)
 *   6     ec_enc_bit_logp(val=v, logp=a)           ec_dec_bit_logp(logp=a)
 *   7     ec_encode_bin(fl=a, fh=b, bits=c)        ec_decode_bin(bits=c), then ec_dec_update(a, b, 1<<c)
 *   8     ec_laplace_encode(&val=v, fs=a, d=b)     ec_laplace_decode(fs=a, decay=b)
 *   9     ec_enc_shrink(size=a)                    (no-op)
 *   10    (no-op)                                  ec_decode(ft=c) only
 *   11    (no-op)                                  ec_decode_bin(bits=c) only
 *   12    (no-op)                                  ec_dec_update(a, b, c) only
 * `values` carries the signed symbol for kinds 3..8 on encode (kind 8 writes back the value actually
 * coded) and receives the decoded value on decode.
 * After each op: tell[i] = ec_tell, tell_frac[i] = ec_tell_frac, rng[i] = rng.
 * info (encoder): error, final rng (after ec_enc_done), offs, end_offs, nend_bits, storage.
 * info (decoder): error, final rng, offs, end_offs, nend_bits, storage. */

static void shim_ec_info(ec_ctx *ec, opus_uint32 *info)
{
   info[0] = (opus_uint32)ec->error;
   info[1] = ec->rng;
   info[2] = ec->offs;
   info[3] = ec->end_offs;
   info[4] = (opus_uint32)ec->nend_bits;
   info[5] = ec->storage;
}

SHIM_API int shim_ec_encode_ops(unsigned char *buf, int size, int n, const int *kind,
                                const opus_uint32 *a, const opus_uint32 *b, const opus_uint32 *c,
                                int *values, const unsigned char *tab8, const opus_uint16 *tab16,
                                int *tell, opus_uint32 *tell_frac, opus_uint32 *rng, opus_uint32 *info)
{
   ec_enc ec;
   int i;
   ec_enc_init(&ec, buf, (opus_uint32)size);
   for (i = 0; i < n; i++) {
      switch (kind[i]) {
      case 0: ec_enc_uint(&ec, a[i], b[i]); break;
      case 1: ec_encode(&ec, a[i], b[i], c[i]); break;
      case 2: ec_enc_bits(&ec, a[i], b[i]); break;
      case 3: ec_enc_icdf(&ec, values[i], tab8 + a[i], b[i]); break;
      case 4: ec_enc_icdf16(&ec, values[i], tab16 + a[i], b[i]); break;
      case 5: ec_laplace_encode_p0(&ec, values[i], (opus_uint16)a[i], (opus_uint16)b[i]); break;
      case 6: ec_enc_bit_logp(&ec, values[i], a[i]); break;
      case 7: ec_encode_bin(&ec, a[i], b[i], c[i]); break;
      case 8: ec_laplace_encode(&ec, &values[i], a[i], (int)b[i]); break;
      case 9: ec_enc_shrink(&ec, a[i]); break;
      case 10: case 11: case 12: break;
      default: return -1 - i;
      }
      tell[i] = ec_tell(&ec);
      tell_frac[i] = ec_tell_frac(&ec);
      rng[i] = ec.rng;
   }
   ec_enc_done(&ec);
   shim_ec_info(&ec, info);
   return 0;
}

SHIM_API int shim_ec_decode_ops(unsigned char *buf, int size, int n, const int *kind,
                                const opus_uint32 *a, const opus_uint32 *b, const opus_uint32 *c,
                                int *values, const unsigned char *tab8, const opus_uint16 *tab16,
                                int *tell, opus_uint32 *tell_frac, opus_uint32 *rng, opus_uint32 *info)
{
   ec_dec ec;
   int i;
   ec_dec_init(&ec, buf, (opus_uint32)size);
   for (i = 0; i < n; i++) {
      switch (kind[i]) {
      case 0: values[i] = (int)ec_dec_uint(&ec, b[i]); break;
      case 1: values[i] = (int)ec_decode(&ec, c[i]); ec_dec_update(&ec, a[i], b[i], c[i]); break;
      case 2: values[i] = (int)ec_dec_bits(&ec, b[i]); break;
      case 3: values[i] = ec_dec_icdf(&ec, tab8 + a[i], b[i]); break;
      case 4: values[i] = ec_dec_icdf16(&ec, tab16 + a[i], b[i]); break;
      case 5: values[i] = ec_laplace_decode_p0(&ec, (opus_uint16)a[i], (opus_uint16)b[i]); break;
      case 6: values[i] = ec_dec_bit_logp(&ec, a[i]); break;
      case 7: values[i] = (int)ec_decode_bin(&ec, c[i]); ec_dec_update(&ec, a[i], b[i], 1U << c[i]); break;
      case 8: values[i] = ec_laplace_decode(&ec, a[i], (int)b[i]); break;
      case 9: break;
      case 10: values[i] = (int)ec_decode(&ec, c[i]); break;
      case 11: values[i] = (int)ec_decode_bin(&ec, c[i]); break;
      case 12: ec_dec_update(&ec, a[i], b[i], c[i]); break;
      default: return -1 - i;
      }
      tell[i] = ec_tell(&ec);
      tell_frac[i] = ec_tell_frac(&ec);
      rng[i] = ec.rng;
   }
   shim_ec_info(&ec, info);
   return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Packets                                                                                        */

/* src/opus.c:opus_packet_parse_impl.  Frame starts are returned as byte offsets into `data`.
 * out_ints: toc, payload_offset, packet_offset, padding offset (-1 if none), padding_len.
 * Returns the parser's result (frame count or negative error). */
SHIM_API int shim_packet_parse_impl(const unsigned char *data, opus_int32 len, int self_delimited,
                                    int *frame_offsets, opus_int16 *sizes, int *out_ints)
{
   const unsigned char *frames[48];
   const unsigned char *padding = NULL;
   unsigned char toc = 0;
   int payload_offset = 0;
   opus_int32 packet_offset = 0;
   opus_int32 padding_len = 0;
   int ret, i;
   memset(frames, 0, sizeof(frames));
   ret = opus_packet_parse_impl(data, len, self_delimited, &toc, frames, sizes, &payload_offset,
                                &packet_offset, &padding, &padding_len);
   for (i = 0; i < 48; i++) frame_offsets[i] = frames[i] ? (int)(frames[i] - data) : -1;
   out_ints[0] = toc;
   out_ints[1] = payload_offset;
   out_ints[2] = packet_offset;
   out_ints[3] = padding ? (int)(padding - data) : -1;
   out_ints[4] = padding_len;
   return ret;
}

/* The public opus_packet_parse, same output convention (out_ints: toc, payload_offset). */
SHIM_API int shim_packet_parse(const unsigned char *data, opus_int32 len, int *frame_offsets,
                               opus_int16 *sizes, int *out_ints)
{
   const unsigned char *frames[48];
   unsigned char toc = 0;
   int payload_offset = 0;
   int ret, i;
   memset(frames, 0, sizeof(frames));
   ret = opus_packet_parse(data, len, &toc, frames, sizes, &payload_offset);
   for (i = 0; i < 48; i++) frame_offsets[i] = frames[i] ? (int)(frames[i] - data) : -1;
   out_ints[0] = toc;
   out_ints[1] = payload_offset;
   return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Padding extensions (src/extensions.c).  nb_frames is ignored by versions without the iterator. */

SHIM_API int shim_ext_count(const unsigned char *data, opus_int32 len, int nb_frames)
{
#if SHIM_EXT_ITERATOR
   return opus_packet_extensions_count(data, len, nb_frames);
#else
   (void)nb_frames;
   return opus_packet_extensions_count(data, len);
#endif
}

/* Parses in bitstream order.  *n is the capacity on input and the count on output (as libopus sets
 * it).  Per extension: id, frame, payload offset into `data`, payload length. */
SHIM_API int shim_ext_parse(const unsigned char *data, opus_int32 len, int nb_frames, int *ids,
                            int *frames, int *offsets, int *lens, opus_int32 *n)
{
   opus_extension_data *ext;
   opus_int32 cap = *n;
   opus_extension_data buf[512];
   int ret, i;
   if (cap > 512) cap = 512;
   *n = cap;
   ext = buf;
   memset(buf, 0, sizeof(buf));
#if SHIM_EXT_ITERATOR
   ret = opus_packet_extensions_parse(data, len, ext, n, nb_frames);
#else
   (void)nb_frames;
   ret = opus_packet_extensions_parse(data, len, ext, n);
#endif
   for (i = 0; i < *n && i < cap; i++) {
      ids[i] = ext[i].id;
      frames[i] = ext[i].frame;
      offsets[i] = ext[i].data ? (int)(ext[i].data - data) : -1;
      lens[i] = ext[i].len;
   }
   return ret;
}

/* Frame-order parse (opus_packet_extensions_count_ext + _parse_ext); only with the iterator.
 * Returns OPUS_UNIMPLEMENTED otherwise. */
SHIM_API int shim_ext_parse_frame_order(const unsigned char *data, opus_int32 len, int nb_frames,
                                        int *ids, int *frames, int *offsets, int *lens, opus_int32 *n)
{
#if SHIM_EXT_ITERATOR
   opus_extension_data buf[512];
   opus_int32 per_frame[48];
   opus_int32 cap = *n;
   int ret, i;
   if (nb_frames < 0 || nb_frames > 48) return OPUS_BAD_ARG;
   if (cap > 512) cap = 512;
   memset(buf, 0, sizeof(buf));
   ret = opus_packet_extensions_count_ext(data, len, per_frame, nb_frames);
   if (ret < 0) return ret;
   *n = cap;
   ret = opus_packet_extensions_parse_ext(data, len, buf, n, per_frame, nb_frames);
   for (i = 0; i < *n && i < cap; i++) {
      ids[i] = buf[i].id;
      frames[i] = buf[i].frame;
      offsets[i] = buf[i].data ? (int)(buf[i].data - data) : -1;
      lens[i] = buf[i].len;
   }
   return ret;
#else
   (void)data; (void)len; (void)nb_frames; (void)ids; (void)frames; (void)offsets; (void)lens;
   *n = 0;
   return OPUS_UNIMPLEMENTED;
#endif
}

/* opus_packet_extensions_generate.  Payload i is payloads[offsets[i] .. offsets[i]+lens[i]).
 * `out` may be NULL with out_len 0... libopus then only measures; we pass whatever Python gives. */
SHIM_API int shim_ext_generate(unsigned char *out, opus_int32 out_len, int n, const int *ids,
                               const int *frames, const unsigned char *payloads, const int *offsets,
                               const int *lens, int nb_frames, int pad)
{
   opus_extension_data buf[512];
   int i;
   if (n < 0 || n > 512) return OPUS_BAD_ARG;
   for (i = 0; i < n; i++) {
      buf[i].id = ids[i];
      buf[i].frame = frames[i];
      buf[i].data = payloads + offsets[i];
      buf[i].len = lens[i];
   }
#if SHIM_EXT_ITERATOR
   return opus_packet_extensions_generate(out, out_len, buf, n, nb_frames, pad);
#else
   (void)nb_frames;
   return opus_packet_extensions_generate(out, out_len, buf, n, pad);
#endif
}

/* ---------------------------------------------------------------------------------------------- */
/* The DRED encoder (dnn/dred_encoder.c), its feature extractor (dnn/lpcnet_enc.c) and PitchDNN   */

/* Sizes, so that Python allocates the opaque states and knows the buffer lengths.
 * out: sizeof(DREDEnc), sizeof(LPCNetEncState), DRED_MAX_FRAMES, DRED_LATENT_DIM, DRED_STATE_DIM,
 *      NB_TOTAL_FEATURES, PITCH_IF_FEATURES, NB_XCORR_FEATURES, len(input_buffer), RESAMPLING_ORDER+1,
 *      DRED_SILK_ENCODER_DELAY.  Returns 11. */
SHIM_API int shim_enc_layout(int *out)
{
   out[0] = (int)sizeof(DREDEnc);
   out[1] = (int)sizeof(LPCNetEncState);
   out[2] = DRED_MAX_FRAMES;
   out[3] = DRED_LATENT_DIM;
   out[4] = DRED_STATE_DIM;
   out[5] = NB_TOTAL_FEATURES;
   out[6] = PITCH_IF_FEATURES;
   out[7] = NB_XCORR_FEATURES;
   out[8] = SHIM_FIELD_LEN(DREDEnc, input_buffer);
   out[9] = SHIM_FIELD_LEN(DREDEnc, resample_mem);
   out[10] = DRED_SILK_ENCODER_DELAY;
   return 11;
}

/* dred_encoder_init on caller-owned memory of sizeof(DREDEnc) bytes.  Returns enc->loaded. */
SHIM_API int shim_dredenc_init(DREDEnc *enc, int fs, int channels)
{
   memset(enc, 0, sizeof(*enc));
   dred_encoder_init(enc, fs, channels);
   return enc->loaded;
}

SHIM_API void shim_dredenc_compute_latents(DREDEnc *enc, const float *pcm, int frame_size, int extra_delay)
{
   dred_compute_latents(enc, pcm, frame_size, extra_delay, opus_select_arch());
}

/* ints: input_buffer_fill, dred_offset, latent_offset, last_extra_dred_offset, latents_buffer_fill.
 * latents: DRED_MAX_FRAMES*DRED_LATENT_DIM, newest first; state: DRED_MAX_FRAMES*DRED_STATE_DIM;
 * input: len(input_buffer) floats (the 16 kHz samples waiting for the next 20 ms).  NULL skips. */
SHIM_API void shim_dredenc_get(const DREDEnc *enc, int *ints, float *latents, float *state, float *input)
{
   if (ints) {
      ints[0] = enc->input_buffer_fill;
      ints[1] = enc->dred_offset;
      ints[2] = enc->latent_offset;
      ints[3] = enc->last_extra_dred_offset;
      ints[4] = enc->latents_buffer_fill;
   }
   if (latents) memcpy(latents, enc->latents_buffer, sizeof(enc->latents_buffer));
   if (state) memcpy(state, enc->state_buffer, sizeof(enc->state_buffer));
   if (input) memcpy(input, enc->input_buffer, sizeof(enc->input_buffer));
}

/* Overwrites the latent and state buffers and their fill (to code chosen latents). NULL skips. */
SHIM_API void shim_dredenc_set(DREDEnc *enc, const int *ints, const float *latents, const float *state)
{
   if (ints) {
      enc->dred_offset = ints[0];
      enc->latent_offset = ints[1];
      enc->last_extra_dred_offset = ints[2];
      enc->latents_buffer_fill = ints[3];
   }
   if (latents) memcpy(enc->latents_buffer, latents, sizeof(enc->latents_buffer));
   if (state) memcpy(enc->state_buffer, state, sizeof(enc->state_buffer));
}

/* dred_encode_silk_frame: writes at most max_bytes into buf, returns the payload length (0: none).
 * activity: the encoder's activity memory, 2.5 ms per entry, newest first (4*DRED_MAX_FRAMES). */
SHIM_API int shim_dredenc_encode(DREDEnc *enc, unsigned char *buf, int max_chunks, int max_bytes,
                                 int q0, int dQ, int qmax, unsigned char *activity)
{
   return dred_encode_silk_frame(enc, buf, max_chunks, max_bytes, q0, dQ, qmax, activity, opus_select_arch());
}

/* One RDO-VAE encoder step (dnn/dred_rdovae_enc.c:dred_rdovae_encode_dframe) on the encoder's own
 * model and network state: input = two frames of DRED_NUM_FEATURES; writes one latent and one state. */
SHIM_API void shim_rdovae_encode_dframe(DREDEnc *enc, const float *input, float *latent, float *state)
{
   dred_rdovae_encode_dframe(&enc->rdovae_enc, &enc->model, latent, state, input, opus_select_arch());
}

/* lpcnet_encoder_init on caller-owned memory of sizeof(LPCNetEncState) bytes (PitchDNN's compiled-in
 * weights included). */
SHIM_API void shim_lpcnet_enc_init(LPCNetEncState *st) { lpcnet_encoder_init(st); }

/* lpcnet_compute_single_frame_features_float on 160 samples at 16 kHz (int16 scale).
 * features: NB_TOTAL_FEATURES; if_features: PITCH_IF_FEATURES; xcorr: NB_XCORR_FEATURES; ints? none.
 * extra[0] = dnn_pitch.  Any of the last four may be NULL. */
SHIM_API void shim_lpcnet_features(LPCNetEncState *st, const float *pcm, float *features, float *if_features,
                                   float *xcorr, float *extra)
{
   float f[NB_TOTAL_FEATURES];
   lpcnet_compute_single_frame_features_float(st, pcm, f, opus_select_arch());
   if (features) memcpy(features, f, sizeof(f));
   if (if_features) memcpy(if_features, st->if_features, sizeof(st->if_features));
   if (xcorr) memcpy(xcorr, st->xcorr_features, sizeof(st->xcorr_features));
   if (extra) extra[0] = st->dnn_pitch;
}

/* compute_pitchdnn on the PitchDNN state inside an LPCNetEncState, on given inputs. */
SHIM_API float shim_pitchdnn(LPCNetEncState *st, const float *if_features, const float *xcorr)
{
   return compute_pitchdnn(&st->pitchdnn, if_features, xcorr, opus_select_arch());
}

/* ---------------------------------------------------------------------------------------------- */
/* The listening side: FARGAN (dnn/fargan.c), the neural PLC (dnn/lpcnet_plc.c), Burg (dnn/freq.c)   */

/* out: sizeof(FARGANState), sizeof(LPCNetPLCState), FARGAN_CONT_SAMPLES, FARGAN_FRAME_SIZE, NB_FEATURES,
 *      CONT_VECTORS, PLC_BUF_SIZE, PLC_MAX_FEC, NB_BANDS.  Returns 9. */
SHIM_API int shim_listen_layout(int *out)
{
   out[0] = (int)sizeof(FARGANState);
   out[1] = (int)sizeof(LPCNetPLCState);
   out[2] = FARGAN_CONT_SAMPLES;
   out[3] = FARGAN_FRAME_SIZE;
   out[4] = NB_FEATURES;
   out[5] = CONT_VECTORS;
   out[6] = PLC_BUF_SIZE;
   out[7] = PLC_MAX_FEC;
   out[8] = NB_BANDS;
   return 9;
}

/* fargan_init on caller-owned memory of sizeof(FARGANState) bytes (the compiled-in weights). */
SHIM_API void shim_fargan_init(FARGANState *st) { memset(st, 0, sizeof(*st)); fargan_init(st); }

/* fargan_cont: pcm0 holds FARGAN_CONT_SAMPLES float samples (int16 scale / 32768), features0 the
 * CONT_VECTORS (5) feature vectors of NB_FEATURES that go with them. */
SHIM_API void shim_fargan_cont(FARGANState *st, const float *pcm0, const float *features0)
{
   fargan_cont(st, pcm0, features0);
}

/* fargan_synthesize: FARGAN_FRAME_SIZE float samples for one feature vector of NB_FEATURES. */
SHIM_API void shim_fargan_synthesize(FARGANState *st, float *pcm, const float *features)
{
   fargan_synthesize(st, pcm, features);
}

/* fargan_synthesize_int: the same as int16 (what the PLC writes). */
SHIM_API void shim_fargan_synthesize_int(FARGANState *st, opus_int16 *pcm, const float *features)
{
   fargan_synthesize_int(st, pcm, features);
}

/* ints: cont_initialized, last_period; floats: deemph_mem. */
SHIM_API void shim_fargan_get(const FARGANState *st, int *ints, float *floats)
{
   if (ints) { ints[0] = st->cont_initialized; ints[1] = st->last_period; }
   if (floats) floats[0] = st->deemph_mem;
}

/* burg_cepstral_analysis on FRAME_SIZE (160) samples: writes 2*NB_BANDS values. */
SHIM_API void shim_burg_cepstrum(float *ceps, const float *x) { burg_cepstral_analysis(ceps, x); }

/* lpcnet_plc_init on caller-owned memory of sizeof(LPCNetPLCState) bytes. Returns its code. */
SHIM_API int shim_plc_init(LPCNetPLCState *st) { memset(st, 0, sizeof(*st)); return lpcnet_plc_init(st); }
SHIM_API void shim_plc_reset(LPCNetPLCState *st) { lpcnet_plc_reset(st); }
SHIM_API int shim_plc_update(LPCNetPLCState *st, opus_int16 *pcm) { return lpcnet_plc_update(st, pcm); }
SHIM_API int shim_plc_conceal(LPCNetPLCState *st, opus_int16 *pcm) { return lpcnet_plc_conceal(st, pcm); }
/* features NULL: a frame DRED does not cover (fec_skip). */
SHIM_API void shim_plc_fec_add(LPCNetPLCState *st, const float *features) { lpcnet_plc_fec_add(st, features); }
SHIM_API void shim_plc_fec_clear(LPCNetPLCState *st) { lpcnet_plc_fec_clear(st); }

/* ints: blend, loss_count, analysis_gap, analysis_pos, predict_pos, fec_read_pos, fec_fill_pos, fec_skip.
 * features: NB_TOTAL_FEATURES (the last features); pcm: PLC_BUF_SIZE floats (the history). NULL skips. */
SHIM_API void shim_plc_get(const LPCNetPLCState *st, int *ints, float *features, float *pcm)
{
   if (ints) {
      ints[0] = st->blend; ints[1] = st->loss_count; ints[2] = st->analysis_gap; ints[3] = st->analysis_pos;
      ints[4] = st->predict_pos; ints[5] = st->fec_read_pos; ints[6] = st->fec_fill_pos; ints[7] = st->fec_skip;
   }
   if (features) memcpy(features, st->features, sizeof(st->features));
   if (pcm) memcpy(pcm, st->pcm, sizeof(st->pcm));
}
