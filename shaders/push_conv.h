/* push_conv.h — push constants of the conv kernels (see dtr_push.h). */
#ifndef DTR_PUSH_CONV_H
#define DTR_PUSH_CONV_H
#include "push_common.h"

#endif
