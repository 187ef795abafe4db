import Foundation
import FuzzMain
import RancherAuth

/// Any bytes as a list page of each record kind: the one-pass reader must return or give up,
/// never trap, and whatever it returns must be exactly what `JSONDecoder` makes of the same
/// bytes through the records' `Decodable` inits (the reading it stands in for).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecordListPage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    check(bytes, RecordListPage.tokens)
    check(bytes, RecordListPage.hashSecrets)
    check(bytes, RecordListPage.users)
    return 0
}

/// One item as `KubeClient`'s `LenientObject` took it: the record, or a failure.
private enum Item<Record: Decodable>: Decodable {
    case record(Record)
    case failed

    init(from decoder: any Decoder) throws {
        do { self = .record(try Record(from: decoder)) } catch { self = .failed }
    }
}

private struct ModelPage<Record: Decodable>: Decodable {
    struct Metadata: Decodable {
        var resourceVersion: String?
        var `continue`: String?
    }
    var metadata: Metadata?
    var items: [Item<Record>]?
}

private func canonical(_ record: some Encodable) -> Data? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return try? encoder.encode(record)
}

private func check<Record: Codable & Sendable>(_ bytes: UnsafeRawBufferPointer, _ read: (UnsafeRawBufferPointer) -> RecordListPage.Page<Record>?) {
    guard let page = read(bytes) else { return }
    guard let model = try? JSONDecoder().decode(ModelPage<Record>.self, from: Data(bytes)) else {
        preconditionFailure("read a page JSONDecoder refuses")
    }
    precondition(page.resourceVersion == model.metadata?.resourceVersion, "resourceVersion differs")
    precondition(page.continueToken == model.metadata?.continue, "continue differs")
    let items = model.items ?? []
    precondition(page.items.count == items.count, "item count differs")
    for (fast, slow) in zip(page.items, items) {
        guard case .record(let expected) = slow else { preconditionFailure("read an item JSONDecoder refuses") }
        precondition(canonical(fast) == canonical(expected), "an item differs")
    }
}
