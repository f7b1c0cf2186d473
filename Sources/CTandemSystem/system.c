// The header is inline-only; this file gives SwiftPM a translation unit for the target.
#include "tandem_system.h"
