/* An external implementation for `opus-dred conform --impl external:'./adapter'`, in C, over libopus' public API.
 *
 * It speaks the JSON-lines protocol of docs/conformance.md ("opus-dred-conform/1") on stdin/stdout and answers
 * what libopus' public API (include/opus.h) can answer:
 *
 *   packet         opus_packet_parse, opus_packet_get_samples_per_frame, opus_packet_get_bandwidth
 *   dred_features  opus_dred_decoder_create, opus_dred_alloc, opus_dred_parse (deferred), opus_dred_process
 *   invalid        the same parsers, for the packet and dred layers: a negative return code is "rejected"
 *
 * Everything else is answered "unsupported" (the runner reports it as skipped). The public API gives no error
 * class or byte offset, no padding details, and keeps OpusDRED opaque: those fields are named in "not_reported"
 * (compared as partial). Built with -DREAD_OPUSDRED_STRUCT and the build's own internal headers, it also reports
 * nb_latents, dred_offset and the features from struct OpusDRED (dnn/dred_decoder.h of the same tree).
 *
 * Usage: adapter [PROFILE]   (default: "libopus-<version>" from opus_get_version_string())
 * Build: cc -O2 -I<libopus>/include adapter.c <build>/.libs/libopus.a -lm -o adapter   (see README.md here)
 *
 * The JSON reader is the least that works for the runner's requests (one object per line, no spaces between
 * tokens, as `json.dumps(..., separators=(",", ":"))` writes): find a key, read a string, number or boolean.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <opus.h>
#ifdef READ_OPUSDRED_STRUCT
#include "dred_decoder.h"
#endif

#define PROTOCOL "opus-dred-conform/1"
#define MAX_DRED_LATENTS 26 /* DRED_NUM_REDUNDANCY_FRAMES / 2 in dnn/dred_config.h of 1.5.2 and 1.6.1 */

/* ---- a minimal JSON reader ---------------------------------------------------------------------------- */

/* The value after the first key named `key` at or after `p` (any depth), or NULL. */
static const char *find_key(const char *p, const char *key) {
   size_t n = strlen(key);
   for (; p && *p; p++) {
      if (*p != '"') continue;
      const char *s = ++p;
      while (*p && *p != '"') p += (*p == '\\' && p[1]) ? 2 : 1;
      if (!*p) return NULL;
      if ((size_t)(p - s) == n && strncmp(s, key, n) == 0 && p[1] == ':') return p + 2;
   }
   return NULL;
}

/* Copy the string value at `v` into `out` (no escapes are needed for the fields read here). */
static int read_string(const char *v, char *out, size_t cap) {
   if (!v || *v != '"') return 0;
   size_t i = 0;
   for (v++; *v && *v != '"' && i + 1 < cap; v++) out[i++] = *v;
   out[i] = 0;
   return 1;
}

static long read_long(const char *v, long dflt) { return (v && (*v == '-' || (*v >= '0' && *v <= '9'))) ? strtol(v, NULL, 10) : dflt; }
static int read_bool(const char *v) { return v && strncmp(v, "true", 4) == 0; }

/* Standard base64 (RFC 4648 §4) at `v` (a JSON string) into `out`; returns the number of bytes. */
static int read_base64(const char *v, unsigned char *out, int cap) {
   static const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
   unsigned acc = 0;
   int bits = 0, n = 0;
   if (!v || *v != '"') return -1;
   for (v++; *v && *v != '"' && *v != '='; v++) {
      const char *c = strchr(abc, *v);
      if (!c) return -1;
      acc = (acc << 6) | (unsigned)(c - abc);
      bits += 6;
      if (bits >= 8) {
         bits -= 8;
         if (n >= cap) return -1;
         out[n++] = (unsigned char)(acc >> bits);
      }
   }
   return n;
}

/* The bytes of input `name` ({"base64": "..."}) of the request. */
static int input_bytes(const char *req, const char *name, unsigned char *out, int cap) {
   const char *inputs = find_key(req, "inputs");
   const char *v = inputs ? find_key(inputs, name) : NULL;
   return v ? read_base64(find_key(v, "base64"), out, cap) : -1;
}

/* ---- answers -------------------------------------------------------------------------------------------- */

static const char *opus_code_name(int ret) {
   switch (ret) {
   case OPUS_BAD_ARG: return "OPUS_BAD_ARG";
   case OPUS_BUFFER_TOO_SMALL: return "OPUS_BUFFER_TOO_SMALL";
   case OPUS_INTERNAL_ERROR: return "OPUS_INTERNAL_ERROR";
   case OPUS_INVALID_PACKET: return "OPUS_INVALID_PACKET";
   case OPUS_UNIMPLEMENTED: return "OPUS_UNIMPLEMENTED";
   case OPUS_INVALID_STATE: return "OPUS_INVALID_STATE";
   default: return "OPUS_ALLOC_FAIL";
   }
}

static void answer_unsupported(long id, const char *reason) {
   printf("{\"id\":%ld,\"unsupported\":true,\"reason\":\"%s\"}\n", id, reason);
}

/* The input was rejected: libopus says only which call and which code. */
static void answer_rejected(long id, const char *call, int ret) {
   printf("{\"id\":%ld,\"error\":{\"class\":null,\"byte_offset\":null,\"message\":\"%s\",\"code\":\"%s\"}}\n",
          id, call, opus_code_name(ret));
}

static void print_ints(const char *name, const int *v, int n, const char *after) {
   printf("\"%s\":[", name);
   for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", v[i]);
   printf("]%s", after);
}

/* RFC 6716 §3.1 (Table 2): the coding mode of a TOC configuration. */
static const char *toc_mode(int config) { return config < 12 ? "SILK" : config < 16 ? "Hybrid" : "CELT"; }

static const char *bandwidth_name(int bw) {
   switch (bw) {
   case OPUS_BANDWIDTH_NARROWBAND: return "NB";
   case OPUS_BANDWIDTH_MEDIUMBAND: return "MB";
   case OPUS_BANDWIDTH_WIDEBAND: return "WB";
   case OPUS_BANDWIDTH_SUPERWIDEBAND: return "SWB";
   default: return "FB";
   }
}

static void handle_packet(long id, const char *req, const unsigned char *data, int len) {
   const unsigned char *frames[48];
   opus_int16 sizes[48];
   unsigned char toc;
   int payload_offset, offsets[48], size_ints[48];
   if (read_bool(find_key(req, "self_delimited"))) {
      answer_unsupported(id, "opus_packet_parse has no self-delimited framing");
      return;
   }
   int nb = opus_packet_parse(data, len, &toc, frames, sizes, &payload_offset);
   if (nb < 0) {
      answer_rejected(id, "opus_packet_parse", nb);
      return;
   }
   for (int i = 0; i < nb; i++) {
      offsets[i] = (int)(frames[i] - data);
      size_ints[i] = sizes[i];
   }
   printf("{\"id\":%ld,\"result\":{\"packet\":{\"toc\":%d,\"config\":%d,\"stereo\":%s,\"code\":%d,"
          "\"mode\":\"%s\",\"bandwidth\":\"%s\",\"frame_size_48k\":%d,\"nb_frames\":%d,",
          id, toc, toc >> 3, (toc & 4) ? "true" : "false", toc & 3, toc_mode(toc >> 3),
          bandwidth_name(opus_packet_get_bandwidth(data)), opus_packet_get_samples_per_frame(data, 48000), nb);
   print_ints("frame_sizes", size_ints, nb, ",");
   print_ints("frame_offsets", offsets, nb, ",");
   printf("\"payload_offset\":%d,\"length\":%d}},\"not_reported\":[\"packet.vbr\",\"packet.has_padding\","
          "\"packet.padding_offset\",\"packet.padding_length\"]}\n", payload_offset, len);
}

static OpusDREDDecoder *dred_decoder;
static OpusDRED *dred;

/* opus_dred_parse with the request's parameters; a null max_dred_samples asks for all a packet can hold. */
static int dred_parse(const char *req, const unsigned char *data, int len, int *dred_end) {
   const char *params = find_key(req, "parameters");
   long rate = read_long(find_key(params, "sampling_rate"), 48000);
   long max_samples = read_long(find_key(params, "max_dred_samples"), MAX_DRED_LATENTS * 4 * rate / 100);
   return opus_dred_parse(dred_decoder, dred, data, len, (opus_int32)max_samples, (opus_int32)rate, dred_end, 1);
}

/* After a successful deferred parse, opus_dred_process answers OPUS_BAD_ARG exactly when the parse found no
 * DRED payload (src/opus_decoder.c: it accepts only a parsed or processed OpusDRED): that is `found`. */
static void handle_dred_features(long id, const char *req, const unsigned char *data, int len) {
   int dred_end = 0;
   int ret = dred_parse(req, data, len, &dred_end);
   if (ret < 0) {
      answer_rejected(id, "opus_dred_parse", ret);
      return;
   }
   int err = opus_dred_process(dred_decoder, dred, dred);
   if (err < 0 && err != OPUS_BAD_ARG) {
      answer_rejected(id, "opus_dred_process", err);
      return;
   }
   printf("{\"id\":%ld,\"result\":{\"ret\":%d,\"dred_end\":%d", id, ret, dred_end);
   if (err == OPUS_BAD_ARG) {
      printf(",\"found\":false,\"nb_latents\":0}}\n");
      return;
   }
#ifdef READ_OPUSDRED_STRUCT
   /* fec_features holds 4 feature vectors per latent chunk, DRED_NUM_FEATURES each */
   printf(",\"found\":true,\"nb_latents\":%d,\"dred_offset\":%d,\"features\":[", dred->nb_latents, dred->dred_offset);
   for (int f = 0; f < 4 * dred->nb_latents; f++) {
      printf(f ? ",[" : "[");
      for (int k = 0; k < DRED_NUM_FEATURES; k++) printf(k ? ",%.9g" : "%.9g", dred->fec_features[f * DRED_NUM_FEATURES + k]);
      printf("]");
   }
   printf("]}}\n");
#else
   printf(",\"found\":true},\"not_reported\":[\"nb_latents\",\"dred_offset\",\"features\"]}\n");
#endif
}

static void handle_invalid(long id, const char *req, const unsigned char *data, int len) {
   char layer[32] = "";
   read_string(find_key(find_key(req, "parameters"), "layer"), layer, sizeof layer);
   int ret, dred_end = 0;
   const char *call;
   if (strcmp(layer, "packet") == 0 && !read_bool(find_key(req, "self_delimited"))) {
      const unsigned char *frames[48];
      opus_int16 sizes[48];
      ret = opus_packet_parse(data, len, NULL, frames, sizes, NULL);
      call = "opus_packet_parse";
   } else if (strcmp(layer, "dred") == 0) {
      ret = dred_parse(req, data, len, &dred_end);
      call = "opus_dred_parse";
   } else {
      answer_unsupported(id, "layer not reachable through the public API");
      return;
   }
   if (ret < 0) answer_rejected(id, call, ret);
   else printf("{\"id\":%ld,\"result\":{\"accepted\":true}}\n", id);
}

/* ---- the loop ------------------------------------------------------------------------------------------- */

static void answer(const char *req, const char *profile) {
   static unsigned char data[1 << 16];
   char type[16] = "", handler[32] = "";
   long id = read_long(find_key(req, "id"), -1);
   if (read_string(find_key(req, "type"), type, sizeof type) && strcmp(type, "hello") == 0) {
      printf("{\"id\":%ld,\"protocol\":\"%s\",\"version\":\"1.0\",\"name\":\"libopus-c\",\"implementation\":\"%s "
             "(public API, C adapter)\",\"handlers\":[\"packet\",\"dred_features\",\"invalid\"],\"profiles\":[\"%s\"]}\n",
             id, PROTOCOL, opus_get_version_string(), profile);
      return;
   }
   read_string(find_key(req, "handler"), handler, sizeof handler);
   int is_invalid = strcmp(handler, "invalid") == 0;
   int len = input_bytes(req, is_invalid ? "data" : "packet", data, sizeof data);
   if (len < 0) answer_unsupported(id, "no input bytes this adapter can read");
   else if (strcmp(handler, "packet") == 0) handle_packet(id, req, data, len);
   else if (strcmp(handler, "dred_features") == 0) handle_dred_features(id, req, data, len);
   else if (is_invalid) handle_invalid(id, req, data, len);
   else answer_unsupported(id, "handler not implemented");
}

int main(int argc, char **argv) {
   char profile[64];
   const char *v = opus_get_version_string(); /* "libopus 1.6.1" */
   const char *space = strchr(v, ' ');
   snprintf(profile, sizeof profile, "%s", argc > 1 ? argv[1] : "");
   if (argc <= 1) snprintf(profile, sizeof profile, "libopus-%s", space ? space + 1 : v);
   int err;
   dred_decoder = opus_dred_decoder_create(&err);
   dred = opus_dred_alloc(&err);
   if (!dred_decoder || !dred) {
      fprintf(stderr, "adapter: cannot create the DRED decoder (%s)\n", opus_strerror(err));
      return 1;
   }
   char *line = NULL;
   size_t cap = 0;
   while (getline(&line, &cap, stdin) > 0) {
      if (line[0] == '{') answer(line, profile);
      fflush(stdout);
   }
   free(line);
   opus_dred_free(dred);
   opus_dred_decoder_destroy(dred_decoder);
   return 0;
}
