/* sandbox.c - (being written) */
#include "sandbox.h"
