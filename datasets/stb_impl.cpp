// The one translation unit that compiles stb_image (stb_image_write is compiled in
// core/png.cpp). Its own warnings are silenced here only: the rest of the build stays -Wall
// -Wextra clean.
#include "base/stb_warnings.h"  // pushes; popped below
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include "stb/stb_image.h"
#pragma GCC diagnostic pop
