import NIOHTTP1

extension NIOHTTPDecoderLimitConfiguration {
    /// The request-head limits of every listener: `--max-header-bytes` for one field and for the
    /// whole head, and at most 100 fields.
    package static func service(maxHeaderBytes: Int) -> NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = maxHeaderBytes
        limits.maxHeaderListSize = maxHeaderBytes
        limits.maxHeaderFieldCount = 100
        return limits
    }
}
