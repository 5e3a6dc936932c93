/* xlsx_deflate.c — see xlsx_deflate.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include "sinks/xlsx_deflate.h"

#include <dlfcn.h>
#include <stdatomic.h>

/* minizip 1.1's types, spelled out: Debian ships no minizip header with libxlsxwriter. */
typedef unsigned long mz_ulong;
typedef unsigned int mz_uint;
typedef int (*zip_open_fn)(void *file, const char *filename, const void *zipfi,
                           const void *extrafield_local, mz_uint size_extrafield_local,
                           const void *extrafield_global, mz_uint size_extrafield_global,
                           const char *comment, int method, int level, int raw, int window_bits,
                           int mem_level, int strategy, const char *password,
                           mz_ulong crc_for_crypting, mz_ulong version_made_by,
                           mz_ulong flag_base, int zip64);

#define ZIP_INTERNALERROR (-104)
#define Z_DEFLATED 8

static atomic_int g_level = XLSX_DEFLATE_LEVEL_DEFAULT;

void xlsx_deflate_set_level(int level) {
    atomic_store(&g_level, level >= -1 && level <= 9 ? level : XLSX_DEFLATE_LEVEL_DEFAULT);
}

/* Exported from the executable, so libxlsxwriter's call binds here first. */
int zipOpenNewFileInZip4_64(void *file, const char *filename, const void *zipfi,
                            const void *extrafield_local, mz_uint size_extrafield_local,
                            const void *extrafield_global, mz_uint size_extrafield_global,
                            const char *comment, int method, int level, int raw,
                            int window_bits, int mem_level, int strategy, const char *password,
                            mz_ulong crc_for_crypting, mz_ulong version_made_by,
                            mz_ulong flag_base, int zip64);
int zipOpenNewFileInZip4_64(void *file, const char *filename, const void *zipfi,
                            const void *extrafield_local, mz_uint size_extrafield_local,
                            const void *extrafield_global, mz_uint size_extrafield_global,
                            const char *comment, int method, int level, int raw,
                            int window_bits, int mem_level, int strategy, const char *password,
                            mz_ulong crc_for_crypting, mz_ulong version_made_by,
                            mz_ulong flag_base, int zip64) {
    static _Atomic(zip_open_fn) real;
    zip_open_fn fn = atomic_load(&real);
    if (!fn) {
        /* POSIX leaves object-to-function pointer conversion to the implementation;
         * glibc defines it, and dlsym's own manual page converts this way. */
        void *sym = dlsym(RTLD_NEXT, "zipOpenNewFileInZip4_64");
        if (!sym) return ZIP_INTERNALERROR;
        *(void **)&fn = sym;
        atomic_store(&real, fn);
    }
    if (method == Z_DEFLATED && !raw) level = atomic_load(&g_level);
    return fn(file, filename, zipfi, extrafield_local, size_extrafield_local, extrafield_global,
              size_extrafield_global, comment, method, level, raw, window_bits, mem_level,
              strategy, password, crc_for_crypting, version_made_by, flag_base, zip64);
}
