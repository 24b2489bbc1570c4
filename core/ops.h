// All op families. Layers and tools include this one header.
#pragma once
#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/fusion.h"
#include "core/ops/reduce.h"
#include "core/random.h"
#include "core/tensor.h"
