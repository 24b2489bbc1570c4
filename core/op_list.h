// Every differentiable op of core/, in one place. tests/ registers a finite-difference
// gradient test per name, and a test fails when a name here has none. Add a new op here (the
// parameterless unary ones come from MMFUSE_UNARY_OPS, whose entries have a second argument,
// the functor: X must take (name, ...)).
#pragma once
#include "base/elementwise_functors.h"

#define MMFUSE_OPS(X)                                                                     \
  /* elementwise */                                                                        \
  X(add) X(sub) X(mul) X(div) X(affine) X(relu) X(pow) X(clamp) MMFUSE_UNARY_OPS(X)       \
  /* reduce */                                                                             \
  X(sum) X(mean) X(max)                                                                    \
  /* linalg, conv */                                                                       \
  X(matmul) X(linear) X(conv2d) X(conv_transpose2d)                                        \
  /* pool */                                                                               \
  X(max_pool2d) X(avg_pool2d) X(global_avg_pool)                                           \
  /* norm, dropout */                                                                      \
  X(batch_norm) X(dropout)                                                                 \
  /* softmax, losses */                                                                    \
  X(softmax) X(log_softmax) X(cross_entropy) X(l1_loss) X(mse_loss)                        \
  /* shape */                                                                              \
  X(reshape) X(narrow) X(concat) X(split) X(slice) X(pad) X(crop)                          \
  X(upsample_bilinear) X(upsample_nearest)                                                 \
  /* fusion */                                                                             \
  X(channel_shuffle) X(pixel_shift_add) X(channel_gate) X(modality_ensemble) X(modality_stack)
