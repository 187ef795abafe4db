#if canImport(CMalloc)
import CMalloc
#endif

/// glibc's allocator (`malloc.h`, through the CMalloc module map). Elsewhere both do nothing.
package enum Malloc {
    /// `malloc_trim(0)`: hands memory that was freed but kept by malloc's arenas back to the
    /// system, so that a large load costs what its results hold, not what producing them took.
    package static func returnFreedMemory() {
        #if canImport(CMalloc)
        _ = malloc_trim(0)
        #endif
    }

    /// Keeps large blocks (from 256 KiB: a table's rows, a list page) in mappings of their own,
    /// returned to the system when freed. glibc otherwise raises its mmap threshold to the size of
    /// each large block freed (up to 32 MiB), after which a growing table's buffers come from the
    /// heap among small objects and leave holes it cannot give back. Call once, at start.
    package static func keepLargeBlocksMapped() {
        #if canImport(CMalloc)
        _ = mallopt(M_MMAP_THRESHOLD, 256 * 1024)
        #endif
    }

    /// Bytes allocated and not freed (`mallinfo2`: small blocks plus mmapped ones), or `nil`
    /// where it cannot be told. For measurements, not for decisions.
    package static func liveBytes() -> Int? {
        #if canImport(CMalloc)
        return Int(cmalloc_live_bytes())
        #else
        return nil
        #endif
    }
}
