// The functions are all inline in include/tandem_atomics.h; SwiftPM needs one source file per C target.
#include "tandem_atomics.h"
