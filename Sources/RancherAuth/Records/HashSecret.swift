import Foundation

/// The `Secret` named like the token, whose `data.hash` holds the token's salted hash.
public struct HashSecret: Codable, Sendable {
    /// One shared, immutable object, so that the record is one pointer wide in the maps of
    /// 100,000 Secrets (as ``ClusterAuthToken``).
    private final class Storage: Sendable {
        let metadata: ObjectMeta
        let hash: Result<StoredHash, HashFormatError>
        /// The stored text of a hash that does not parse (kept so the snapshot file fails the same
        /// way); a hash that parses is not kept as text: ``StoredHash/canonicalText`` renders it.
        let unparsableText: String?

        init(metadata: ObjectMeta, hash: Result<StoredHash, HashFormatError>, unparsableText: String?) {
            self.metadata = metadata
            self.hash = hash
            self.unparsableText = unparsableText
        }
    }

    private var storage: Storage

    public var metadata: ObjectMeta {
        get { storage.metadata }
        set { storage = Storage(metadata: newValue, hash: storage.hash, unparsableText: storage.unparsableText) }
    }
    /// The hash parsed once; a Secret without a `hash` key reads as an empty (invalid) hash, as in Go.
    public var hash: Result<StoredHash, HashFormatError> { storage.hash }

    /// The hash as the snapshot file stores it (never logged).
    var hashText: String {
        switch storage.hash {
        case .success(let parsed): return parsed.canonicalText
        case .failure: return storage.unparsableText ?? ""
        }
    }

    public var name: String { metadata.name }

    /// Whether the Secret holds a `hash` entry at all: the namespace's other Secrets (certificates,
    /// service-account tokens) are decoded the same way but are not hash records.
    public var hasHashEntry: Bool {
        if case .success = storage.hash { return true }
        return !(storage.unparsableText ?? "").isEmpty
    }

    public init(metadata: ObjectMeta, hash: String) {
        let parsed = StoredHash.parse(hash)
        switch parsed {
        case .success: storage = Storage(metadata: metadata, hash: parsed, unparsableText: nil)
        case .failure: storage = Storage(metadata: metadata, hash: parsed, unparsableText: hash)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(["hash": Data(hashText.utf8).base64EncodedString()], forKey: .data)
    }

    private enum CodingKeys: String, CodingKey { case metadata, data, stringData }

    private struct DataKey: CodingKey {
        static let hash = DataKey(stringValue: "hash")
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: "")
        // Only the `hash` entry is read (a Secret may hold other keys; decoding them all as a
        // `[String: String?]` was most of the cost of syncing 100,000 Secrets).
        func hashEntry(_ key: CodingKeys) throws -> String? {
            guard try container.contains(key) && !container.decodeNil(forKey: key) else { return nil }
            let entries = try container.nestedContainer(keyedBy: DataKey.self, forKey: key)
            return try entries.decodeIfPresent(String.self, forKey: DataKey.hash)
        }
        let encoded = try hashEntry(.data)
        // `stringData` is write-only in the API (the server folds it into `data`); manifests in a
        // records directory may use it, and as in Kubernetes it wins over `data`.
        let plain = try hashEntry(.stringData)
        var hashText = ""
        if let plain {
            hashText = plain
        } else if let encoded {
            guard let decoded = GoBase64.decodePadded(encoded.utf8) else {
                throw RecordFieldError(field: "data.hash", problem: "not valid base64")
            }
            hashText = String(decoding: decoded, as: UTF8.self)
        }
        self.init(metadata: metadata, hash: hashText)
    }
}

extension HashSecret: TableRecord {
    /// A hash Secret as a ``RecordTable`` row of 16 bytes: the salt and digest go to the table's
    /// byte arena (72 bytes for SHA3-512, no array of their own); scrypt's parameters and an
    /// unparsable hash's error and text, both rare, are boxed so that the usual row stays small.
    public struct Row: Sendable {
        enum Hash: Sendable {
            case sha3, sha256
            case scrypt(RecordBox<ScryptParameters>)
            case invalid(RecordBox<(error: HashFormatError, text: String?)>)
        }

        let hash: Hash
        /// The salt's length in the arena (a salt past 4 GiB cannot be stored: the table refuses
        /// an arena that large).
        let saltCount: UInt32

        /// Why the hash does not parse, or `nil` when it does.
        var failure: HashFormatError? {
            if case .invalid(let box) = hash { return box.value.error }
            return nil
        }

        /// As ``HashSecret/hasHashEntry``.
        var hasHashEntry: Bool {
            if case .invalid(let box) = hash { return !(box.value.text ?? "").isEmpty }
            return true
        }
    }

    public func tableRow(extra: inout [UInt8]) -> Row {
        func row(_ hash: Row.Hash, _ stored: SaltedDigest? = nil) -> Row {
            if let stored {
                extra.append(contentsOf: stored.salt)
                extra.append(contentsOf: stored.digest)
            }
            return Row(hash: hash, saltCount: UInt32(truncatingIfNeeded: stored?.salt.count ?? 0))
        }
        switch storage.hash {
        case .success(let parsed):
            switch parsed.material {
            case .sha3(let stored): return row(.sha3, stored)
            case .sha256(let stored): return row(.sha256, stored)
            case .scrypt(let parameters, let stored): return row(.scrypt(RecordBox(parameters)), stored)
            }
        case .failure(let error): return row(.invalid(RecordBox((error, storage.unparsableText))))
        }
    }

    public static func record(from row: Row, metadata: ObjectMeta, extra: UnsafeRawBufferPointer) -> HashSecret {
        let stored = SaltedDigest(saltThenDigest: extra, saltCount: Int(row.saltCount))
        let hash: Result<StoredHash, HashFormatError>
        switch row.hash {
        case .sha3: hash = .success(StoredHash(material: .sha3(stored)))
        case .sha256: hash = .success(StoredHash(material: .sha256(stored)))
        case .scrypt(let parameters): hash = .success(StoredHash(material: .scrypt(parameters.value, stored)))
        case .invalid(let failure):
            return HashSecret(storage: Storage(metadata: metadata, hash: .failure(failure.value.error), unparsableText: failure.value.text))
        }
        return HashSecret(storage: Storage(metadata: metadata, hash: hash, unparsableText: nil))
    }

    private init(storage: Storage) { self.storage = storage }
}
