/* What a training method's file includes (host/methods/): the trainer's fields, the network
 * and the losses. Not a public header. */
#ifndef PNN_HOST_METHOD_IMPL_H
#define PNN_HOST_METHOD_IMPL_H

#include "pnn/loss.h"
#include "pnn/method.h"
#include "pnn/train.h"

#endif
