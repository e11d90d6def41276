/* opus-dred oracle: libopus' generative packet-loss model (dnn/lossgen.c).
 *
 * libopus.a does not contain dnn/lossgen.c or dnn/lossgen_data.c (they are only compiled into
 * opus_demo by `configure --enable-lossgen`), and lossgen.c carries its own copies of the weight
 * parsing helpers (it #includes dnn/parse_lpcnet_weights.c), so it cannot join the main shim, which
 * links libopus.a whole-archive.  oracle.py therefore builds a second, small shared object from this
 * file plus the tree's own dnn/lossgen.c and dnn/lossgen_data.c, linked normally against libopus.a.
 *
 * Exports (all plain C types, for ctypes):
 *   shim_lossgen_abi_version()               interface version (Python checks it)
 *   shim_lossgen_size()                      sizeof(LossGenState) as this tree declares it
 *   shim_lossgen_init(st)                    dnn/lossgen.c:lossgen_init
 *   shim_lossgen_prob(st, last_loss, frac)   one step of dnn/lossgen.c:sample_loss_impl without its
 *                                            rand() draw: feeds {last_loss, frac} through the network
 *                                            (dense_in tanh, gru1, gru2, dense_out sigmoid), updates
 *                                            the GRU states and returns the loss probability
 *   shim_lossgen_sample(st, frac)            dnn/lossgen.c:sample_loss itself (warm-up on first use,
 *                                            then one libc rand() draw per call), as opus_demo calls it
 * `frac` is what opus_demo passes: the -sim_loss percentage times .01f.
 *
 * Part of opus-dred (BSD-3-Clause).  This file calls libopus; it contains no libopus code.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "lossgen.h"
#include "nnet.h"

#define SHIM_API __attribute__((visibility("default")))

/* Defined (non-static) in dnn/lossgen.c but not declared in lossgen.h. */
void compute_generic_gru_lossgen(const LinearLayer *input_weights, const LinearLayer *recurrent_weights,
                                 float *state, const float *in, int arch);
void compute_generic_dense_lossgen(const LinearLayer *layer, float *output, const float *input, int activation,
                                   int arch);

SHIM_API int shim_lossgen_abi_version(void) { return 1; }

SHIM_API int shim_lossgen_size(void) { return (int)sizeof(LossGenState); }

SHIM_API void shim_lossgen_init(void *st) { lossgen_init((LossGenState *)st); }

SHIM_API float shim_lossgen_prob(void *state, int last_loss, float frac)
{
   LossGenState *st = (LossGenState *)state;
   float x[2];
   float hidden[LOSSGEN_DENSE_IN_OUT_SIZE];
   float p;
   x[0] = (float)last_loss;
   x[1] = frac;
   compute_generic_dense_lossgen(&st->model.lossgen_dense_in, hidden, x, ACTIVATION_TANH, 0);
   compute_generic_gru_lossgen(&st->model.lossgen_gru1_input, &st->model.lossgen_gru1_recurrent, st->gru1_state,
                               hidden, 0);
   compute_generic_gru_lossgen(&st->model.lossgen_gru2_input, &st->model.lossgen_gru2_recurrent, st->gru2_state,
                               st->gru1_state, 0);
   compute_generic_dense_lossgen(&st->model.lossgen_dense_out, &p, st->gru2_state, ACTIVATION_SIGMOID, 0);
   return p;
}

SHIM_API int shim_lossgen_sample(void *st, float frac) { return sample_loss((LossGenState *)st, frac); }
