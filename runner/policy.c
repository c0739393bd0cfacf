/* policy.c - (being written) */
#include "policy.h"
