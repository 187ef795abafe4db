import Foundation
import RancherAuth

/// The fast path of a records directory: files whose documents are each one JSON object (what
/// tools write: `kubectl get -o json`, generators, one object per `---` document) are decoded with
/// Foundation's JSON decoder, a document at a time, instead of through a YAML node tree. JSON is
/// YAML, so the records are the same; a file that is not entirely such documents (comments, block
/// YAML, or JSON that does not parse) takes the YAML path, which also words its syntax errors.
///
/// Measured (bench/scale, 100,000 tokens and 10,000 users in one 52 MB file): the YAML path took
/// 54 s to load; this one takes a few seconds, under two since objects of a record kind are read
/// straight from the bytes (docs/benchmarks.md).
extension RecordsDirectory {
    /// What reading a file as JSON documents came to.
    enum JSONReading {
        case read(FileRecords)
        /// A document is not one JSON object, or does not parse as JSON: the YAML path reads the
        /// file (and words its syntax errors).
        case notJSON
        /// The file cannot be opened or read.
        case unreadable
    }

    /// The records of a file whose documents are each one JSON object, read `readChunkSize` bytes
    /// at a time: complete documents are read as soon as their end is in (a 52 MB file of 210,000
    /// objects was held whole while it was read: the load's peak memory).
    func readJSONDocuments(atPath fullPath: String, file: String, revision: String?) -> JSONReading {
        guard let handle = FileHandle(forReadingAtPath: fullPath) else { return .unreadable }
        defer { try? handle.close() }
        var records = FileRecords(revision: revision)
        let decoder = JSONDecoder()
        decoder.userInfo[JSONRecordDocument.directoryKey] = self
        var splitter = JSONDocumentSplitter()
        var notJSON = false
        /// One complete document: false when it is not JSON (then reading stops).
        func document(line: Int, bytes: UnsafeRawBufferPointer) -> Bool {
            // Straight from the bytes when they settle it: an object of a record kind, or a `List`
            // (kubectl's output) item by item; else `JSONDecoder` decodes the document.
            if addRead(bytes, header: RecordListPage.header(bytes), line: line, file: file, into: &records)
                || addListItems(bytes, decoder: decoder, line: line, file: file, into: &records)
            {
                return true
            }
            do {
                try decoder.decode(JSONRecordDocument.self, from: Data(bytes)).add(to: &records, line: line, file: file)
            } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
                notJSON = true  // not JSON
            } catch {
                records.problems.append(JSONRecordDocument.problem(error, line: line, file: file))
            }
            return !notJSON
        }
        do {
            while true {
                guard let chunk = try handle.read(upToCount: readChunkSize), !chunk.isEmpty else { break }
                guard splitter.feed(chunk, document: document) else { return .notJSON }
            }
        } catch {
            return .unreadable
        }
        return splitter.finish(document: document) ? .read(records) : .notJSON
    }
}

/// Cuts a file's bytes, as they arrive, into YAML documents (`---` lines) and hands on each
/// complete one that is one JSON object, with the line it starts on; stops at one that is not.
/// Keeps only the document still arriving: what has been handed on is dropped.
struct JSONDocumentSplitter {
    private var buffer: [UInt8] = []
    /// Where the document being read starts in `buffer`, and its line.
    private var documentStart = 0
    private var documentLine = 1
    /// Where the line being scanned starts, its number, and how far it has been scanned.
    private var lineStart = 0
    private var lineNumber = 1
    private var scanned = 0

    typealias Document = (_ line: Int, _ bytes: UnsafeRawBufferPointer) -> Bool

    /// Adds `bytes`; hands on the documents they complete. False when one is not one JSON object
    /// (or `document` returned false).
    mutating func feed(_ bytes: some Collection<UInt8>, document: Document) -> Bool {
        buffer.append(contentsOf: bytes)
        while let newline = buffer[scanned...].firstIndex(of: 0x0A) {
            scanned = newline + 1
            guard endLine(at: newline, document: document) else { return false }
        }
        scanned = buffer.count
        // What has been handed on goes; offsets move with the rest.
        if documentStart > 0 {
            buffer.removeFirst(documentStart)
            lineStart -= documentStart
            scanned -= documentStart
            documentStart = 0
        }
        return true
    }

    /// The end of the input: the last line and the last document.
    mutating func finish(document: Document) -> Bool {
        endLine(at: buffer.count, document: document) && close(buffer.count, document: document)
    }

    /// The line `lineStart..<end` is complete: a `---` separator (trailing spaces, tabs and a CR
    /// allowed) closes the document before it.
    private mutating func endLine(at end: Int, document: Document) -> Bool {
        var last = end
        while last > lineStart, buffer[last - 1] == 0x20 || buffer[last - 1] == 0x0D || buffer[last - 1] == 0x09 { last -= 1 }
        if last - lineStart == 3, buffer[lineStart] == UInt8(ascii: "-"), buffer[lineStart + 1] == UInt8(ascii: "-"),
            buffer[lineStart + 2] == UInt8(ascii: "-")
        {
            guard close(lineStart, document: document) else { return false }
            documentStart = end + 1
            documentLine = lineNumber + 1
        }
        lineNumber += 1
        lineStart = end + 1
        return true
    }

    /// Hands on the document `documentStart..<end` (nothing for an empty one); false when it is
    /// not one JSON object.
    private func close(_ end: Int, document: Document) -> Bool {
        var first = documentStart
        var line = documentLine
        while first < end, buffer[first] == 0x20 || buffer[first] == 0x09 || buffer[first] == 0x0A || buffer[first] == 0x0D {
            if buffer[first] == 0x0A { line += 1 }
            first += 1
        }
        guard first < end else { return true }
        guard buffer[first] == UInt8(ascii: "{") else { return false }
        return buffer.withUnsafeBytes { document(line, UnsafeRawBufferPointer(rebasing: $0[first..<end])) }
    }
}

extension RecordsDirectory {
    /// The items of a JSON `List` document, one at a time (``RecordListPage/forEachListItem(_:_:)``):
    /// a token, hash Secret or user read straight from its bytes; any other item, or one that
    /// reader leaves, decoded by `JSONDecoder` on its own — the same records and the same problems,
    /// in the same order, as decoding the whole `List` with `JSONDecoder` gave, without holding
    /// every item at once. `false` when the document is not such a list (decode it whole).
    func addListItems(
        _ document: UnsafeRawBufferPointer, decoder: JSONDecoder, line: Int, file: String, into records: inout FileRecords
    ) -> Bool {
        var index = 0
        return RecordListPage.forEachListItem(document) { header, range in
            defer { index += 1 }
            let bytes = UnsafeRawBufferPointer(rebasing: document[range])
            if addRead(bytes, header: header, line: line, file: file, into: &records) { return }
            do {
                try decoder.decode(JSONRecordDocument.self, from: Data(bytes)).add(to: &records, line: line, file: file)
            } catch {
                // Worded as when the whole list was decoded: the field path starts at the list.
                records.problems.append(JSONRecordDocument.problem(Self.prefixed(error, item: index), line: line, file: file))
            }
        }
    }

    /// One object (a document, or a `List`'s item) of a record kind read straight from its bytes,
    /// as ``JSONRecordDocument`` would add it; `false`, having added nothing, when the reader cannot
    /// be sure (a list, a kind it does not read, anything ``RecordListPage`` leaves).
    private func addRead(
        _ bytes: UnsafeRawBufferPointer, header: ObjectHeader?, line: Int, file: String, into records: inout FileRecords
    ) -> Bool {
        guard let header, !header.kind.hasSuffix("List") else { return false }
        switch admit(header) {
        case .skip:
            return true
        case .unnamed:
            records.problems.append(RecordProblem(file: file, line: line, message: "\(header.kind) has no metadata.name"))
            return true
        case .clusterAuthToken:
            guard let token = RecordListPage.token(bytes) else { return false }
            records.add(token)
        case .clusterUserAttribute:
            guard let user = RecordListPage.user(bytes) else { return false }
            records.add(user)
        case .hashSecret:
            guard let secret = RecordListPage.hashSecret(bytes) else { return false }
            records.add(secret)
        case .emergencySecret, .refreshConfigMap:
            return false
        }
        records.keys?.append(kind: header.kind, name: header.metadata?.name ?? "", line: line)
        return true
    }

    /// A decoding error of a list's item decoded on its own, with the path it had in the list
    /// (`items`, `Index N`, then its own). Other errors (a record's, which names its own field) as they are.
    static func prefixed(_ error: any Error, item index: Int) -> any Error {
        let prefix: [any CodingKey] = [ListItemKey(stringValue: "items"), ListItemKey(index: index)]
        func context(_ context: DecodingError.Context) -> DecodingError.Context {
            DecodingError.Context(
                codingPath: prefix + context.codingPath, debugDescription: context.debugDescription, underlyingError: context.underlyingError)
        }
        switch error {
        case DecodingError.typeMismatch(let type, let original): return DecodingError.typeMismatch(type, context(original))
        case DecodingError.valueNotFound(let type, let original): return DecodingError.valueNotFound(type, context(original))
        case DecodingError.keyNotFound(let key, let original): return DecodingError.keyNotFound(key, context(original))
        case DecodingError.dataCorrupted(let original): return DecodingError.dataCorrupted(context(original))
        case let error as JSONRecordDocument.RecordError:
            // Its depth counted the two keys of the list.
            return JSONRecordDocument.RecordError(what: error.what, underlying: prefixed(error.underlying, item: index), depth: error.depth + 2)
        default: return error
        }
    }

    /// The keys `JSONDecoder` puts in a list item's coding path.
    private struct ListItemKey: CodingKey {
        let stringValue: String
        let intValue: Int?
        init(stringValue: String) {
            self.stringValue = stringValue
            intValue = nil
        }
        init(index: Int) {
            stringValue = "Index \(index)"
            intValue = index
        }
        init?(intValue: Int) { self.init(index: intValue) }
    }
}

/// One JSON document of a records directory, decoded in one pass: the header, then the record its
/// kind names (the same admission rules as the YAML path: ``RecordsDirectory/admit(_:)``).
struct JSONRecordDocument: Decodable {
    static let directoryKey = CodingUserInfoKey(rawValue: "kube-api-auth.recordsDirectory")!

    enum Content {
        case skipped
        case unnamed(kind: String)
        case token(ClusterAuthToken)
        case user(ClusterUserAttribute)
        case hashSecret(HashSecret)
        case emergency(name: String, OpaqueSecret)
        case refresh(RefreshConfigMap)
        case list([Result<JSONRecordDocument, any Error>])
    }

    /// A document whose header was read but whose record was not: says which object it was.
    struct RecordError: Error {
        let what: String
        let underlying: any Error
        /// How deep in the file the object is (a List's item): the field path starts below it.
        let depth: Int
    }

    let header: ObjectHeader
    let content: Content

    private enum ListKeys: String, CodingKey { case items }

    /// One item of a `List`, failing on its own.
    private struct Item: Decodable {
        let result: Result<JSONRecordDocument, any Error>
        init(from decoder: any Decoder) throws {
            result = Result { try JSONRecordDocument(from: decoder) }
        }
    }

    init(from decoder: any Decoder) throws {
        header = try ObjectHeader(from: decoder)
        guard let directory = decoder.userInfo[Self.directoryKey] as? RecordsDirectory else {
            throw RecordFieldError(field: "document", problem: "cannot be read without its directory")
        }
        if header.kind.hasSuffix("List") {
            let container = try decoder.container(keyedBy: ListKeys.self)
            content = .list((try container.decodeIfPresent([Item].self, forKey: .items) ?? []).map(\.result))
            return
        }
        let name = header.metadata?.name ?? ""
        do {
            switch directory.admit(header) {
            case .skip: content = .skipped
            case .unnamed: content = .unnamed(kind: header.kind)
            case .clusterAuthToken: content = .token(try ClusterAuthToken(from: decoder))
            case .clusterUserAttribute: content = .user(try ClusterUserAttribute(from: decoder))
            case .emergencySecret: content = .emergency(name: name, try OpaqueSecret(from: decoder))
            case .hashSecret: content = .hashSecret(try HashSecret(from: decoder))
            case .refreshConfigMap: content = .refresh(try RefreshConfigMap(from: decoder))
            }
        } catch {
            throw RecordError(what: "\(header.kind) \(name)", underlying: error, depth: decoder.codingPath.count)
        }
    }

    /// The problem a document's error is, at the document's line.
    static func problem(_ error: any Error, line: Int?, file: String) -> RecordProblem {
        guard let error = error as? RecordError else { return RecordsDirectory.decodingProblem(error, line: line, file: file, what: "object") }
        return RecordsDirectory.decodingProblem(error.underlying, line: line, file: file, what: error.what, depth: error.depth)
    }

    func add(to records: inout RecordsDirectory.FileRecords, line: Int, file: String) {
        switch content {
        case .skipped: return
        case .unnamed(let kind):
            records.problems.append(RecordProblem(file: file, line: line, message: "\(kind) has no metadata.name"))
            return
        case .list(let items):
            for item in items {
                switch item {
                case .success(let document): document.add(to: &records, line: line, file: file)
                case .failure(let error):
                    records.problems.append(Self.problem(error, line: line, file: file))
                }
            }
            return
        case .token(let token): records.add(token)
        case .user(let user): records.add(user)
        case .hashSecret(let secret): records.add(secret)
        case .refresh(let configMap): records.add(configMap)
        case .emergency(let name, let secret):
            guard records.addEmergency(secret, name: name, file: file, line: line) else { return }
        }
        records.keys?.append(kind: header.kind, name: header.metadata?.name ?? "", line: line)
    }
}
