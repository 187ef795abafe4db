import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for tests that need to control exactly when bytes are sent
/// (e.g. half a request before a shutdown signal).
final class RawSocket {
    private let descriptor: Int32

    /// Connects to `127.0.0.1:port`, with a receive timeout so a read never hangs a test.
    init(port: UInt16, receiveTimeoutSeconds: Int = 20) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ProcessError(description: "socket() failed") }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // Not closed here: a class whose initializer throws once it is whole is deinitialized, and
        // `deinit` closes it (closing here too closed a number another thread may own by then).
        guard result == 0 else { throw ProcessError(description: "connect to port \(port) failed") }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw ProcessError(description: "send failed") }
            sent += count
        }
    }

    /// Reads byte by byte until `terminator` has been received (or the connection ends).
    func read(until terminator: String) -> String {
        var data = [UInt8]()
        var byte: UInt8 = 0
        while !data.ends(with: Array(terminator.utf8)), recv(descriptor, &byte, 1, 0) == 1 {
            data.append(byte)
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads until the peer closes the connection (or the receive timeout passes).
    func readToEnd() -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            data += buffer[0..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }

    deinit { close(descriptor) }
}

extension Array where Element: Equatable {
    fileprivate func ends(with suffix: [Element]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
