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
