/* push_gla.h — push constants of the gla kernels (see dtr_push.h). */
#ifndef DTR_PUSH_GLA_H
#define DTR_PUSH_GLA_H
#include "push_common.h"

#endif
