import FuzzMain
import RancherAuth

/// Any bytes as a TokenReview body: the decoder must return or throw, never trap, and what it
/// returns must satisfy its contract.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReviewDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let request = try? TokenReviewDecoder.decode(bytes) {
        precondition(!request.token.isEmpty, "decoded a review without a token")
        // The rest of the review path for the decoded token, on an empty snapshot.
        let decision = Authenticator().review(token: request.token, snapshot: .empty, now: Timestamp(seconds: 0))
        precondition(!decision.isAuthenticated, "authenticated against no records")
    }
    return 0
}
