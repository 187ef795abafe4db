import FuzzMain
import KubeAPIAuthHTTP
import NIOCore

/// Any bytes as what an upstream connection reads after a request: the first byte chooses the
/// request (HEAD or not, upgrade or not), the mode and where the reads split. The reader must
/// return or fail, never trap, and what it hands on must hold together: raw body parts are the
/// bytes right after the head, in order and unchanged; payload never exceeds the bytes; nothing
/// comes after the end but an upgrade's bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseFraming(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let control = data[0]
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let mode: HTTPResponseFraming.Mode = control & 1 == 0 ? .raw : .payload
    var reader = HTTPResponseFraming(maxHeadBytes: 4096)
    reader.expectResponse(toHEAD: control & 2 != 0, upgradeRequested: control & 4 != 0, mode: mode)
    let step = Int(control >> 3) + 1
    var consumed = 0
    var rawBody: [UInt8] = []
    var headEnd: Int?
    var ended = false
    do {
        var start = 0
        while start < input.count {
            let end = min(input.count, start + step)
            var buffer = ByteBuffer(bytes: input[start..<end])
            while let event = try reader.read(&buffer) {
                precondition(!ended, "an event after the end")
                switch event {
                case .head(let head):
                    precondition(head.bytes.readableBytes <= 4096 && (100...999).contains(head.status))
                    headEnd = consumed + (end - start) - buffer.readableBytes
                case .body(let body, let payload):
                    precondition(headEnd != nil && payload <= body.readableBytes)
                    if mode == .raw { rawBody += body.readableBytesView }
                case .end:
                    ended = !reader.isUpgraded
                    if reader.isUpgraded { _ = reader.leftover(from: &buffer) }
                }
            }
            consumed += end - start
            start = end
        }
        _ = try reader.closed()
    } catch {}
    if mode == .raw, let headEnd {
        precondition(Array(input[headEnd..<min(input.count, headEnd + rawBody.count)]) == rawBody, "raw body bytes differ from the input")
    }
    return 0
}
