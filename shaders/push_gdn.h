/* push_gdn.h — push constants of the gdn kernels (see dtr_push.h). */
#ifndef DTR_PUSH_GDN_H
#define DTR_PUSH_GDN_H
#include "push_common.h"

#endif
