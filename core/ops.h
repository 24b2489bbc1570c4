// All op families. Layers and tools include this one header.
#pragma once
#include "core/autograd.h"
#include "core/ops/conv.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/loss.h"
#include "core/ops/norm.h"
#include "core/ops/pool.h"
#include "core/ops/reduce.h"
#include "core/ops/resize.h"
#include "core/ops/shape.h"
#include "core/random.h"
#include "core/tensor.h"
