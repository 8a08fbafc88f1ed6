/* pnn: physical neural networks trained with physics-aware training. One include for all. */
#ifndef PNN_PNN_H
#define PNN_PNN_H

#include "pnn/backend.h"
#include "pnn/comm.h"
#include "pnn/config.h"
#include "pnn/data.h"
#include "pnn/device.h"
#include "pnn/fileio.h"
#include "pnn/layer.h"
#include "pnn/loss.h"
#include "pnn/method.h"
#include "pnn/network.h"
#include "pnn/optim.h"
#include "pnn/rng.h"
#include "pnn/safetensors.h"
#include "pnn/status.h"
#include "pnn/tensor.h"
#include "pnn/train.h"
#include "pnn/twin.h"

#define PNN_VERSION "0.1.0"

#endif
