import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing the pipes of child processes with plain read(2)/write(2).
///
/// Why not `FileHandle`'s own methods: on Linux, `readabilityHandler` races libdispatch's source
/// teardown and has crashed this test process in `_dispatch_event_loop_drain`
/// (swift-corelibs-libdispatch#949), and `availableData`, `readDataToEndOfFile()` and `write(_:)`
/// end the process with a fatal error on `EINTR` or `EPIPE`, both of which a test runner that
/// starts many processes meets.
enum PipeIO {
    /// Calls `chunk` with each block read from `handle` until end of file (or a read error).
    static func readUntilEnd(_ handle: FileHandle, _ chunk: (Data) -> Void) {
        let descriptor = handle.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                chunk(Data(buffer[0..<count]))
            } else if count < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    /// Everything `handle` delivers until end of file.
    static func readAll(_ handle: FileHandle) -> Data {
        var data = Data()
        readUntilEnd(handle) { data.append($0) }
        return data
    }

    /// The first line `handle` delivers (without its newline), or what came before end of file.
    static func readLine(_ handle: FileHandle) -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(handle.fileDescriptor, &byte, 1)
            if count == 1 {
                if byte == UInt8(ascii: "\n") { break }
                bytes.append(byte)
            } else if count < 0, errno == EINTR {
                continue
            } else {
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A write to a pipe whose reader has exited fails with `EPIPE` instead of killing the runner.
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Writes all of `data`; a child that exits without reading (`EPIPE`) is not an error here.
    static func writeAll(_ data: Data, to handle: FileHandle) {
        _ = ignoreBrokenPipes
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(handle.fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
