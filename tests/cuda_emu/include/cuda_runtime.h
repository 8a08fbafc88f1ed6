/* The CPU tier's stand-in for the CUDA runtime header (tests/cuda_emu/cuda_emu.h). */
#include "../cuda_emu.h"
