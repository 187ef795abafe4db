import COpenSSL

/// scrypt (RFC 7914) from OpenSSL's libcrypto; swift-crypto's own scrypt is not used so that the
/// memory limit can be passed explicitly (OpenSSL's default of 32 MiB is just too small for N = 2¹⁵, r = 8).
enum Scrypt {
    static func deriveKey(
        password: UnsafeRawBufferPointer, salt: [UInt8], parameters: ScryptParameters, keyLength: Int
    ) -> [UInt8]? {
        guard parameters.log2N < 64, parameters.r > 0, parameters.p > 0, keyLength > 0 else { return nil }
        var key = [UInt8](repeating: 0, count: keyLength)
        // A non-nil pointer even for an empty password: OpenSSL treats NULL as "no password given".
        // (The pointer to it is only used inside the closure that provides it.)
        var empty: CChar = 0
        let status = withUnsafePointer(to: &empty) { emptyPassword in
            key.withUnsafeMutableBufferPointer { keyBuffer in
                salt.withUnsafeBufferPointer { saltBuffer in
                    EVP_PBE_scrypt(
                        password.baseAddress?.assumingMemoryBound(to: CChar.self) ?? emptyPassword,
                        password.count,
                        saltBuffer.baseAddress, saltBuffer.count,
                        1 << parameters.log2N, UInt64(parameters.r), UInt64(parameters.p),
                        ScryptHashFormat.maxMemoryBytes + (1 << 20),
                        keyBuffer.baseAddress, keyLength)
                }
            }
        }
        guard status == 1 else {
            ERR_clear_error()
            return nil
        }
        return key
    }
}
