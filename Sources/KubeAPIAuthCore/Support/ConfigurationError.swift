/// A configuration that cannot be used, with a message that names the flag or file at fault.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
