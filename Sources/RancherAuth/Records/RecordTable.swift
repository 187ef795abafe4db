/// A record kind that a ``RecordTable`` can hold as a row: the fields a decision needs, in value
/// types, with its variable-length bytes (beyond the name) appended to the table's byte arena. The
/// table keeps the metadata itself (the name in the arena, the namespace once per table, a
/// resourceVersion as its number), so a row holds only what is the kind's own.
public protocol TableRecord: Sendable {
    associatedtype Row: Sendable
    var metadata: ObjectMeta { get }
    /// The row for this record; bytes it needs beyond the name go to the end of `extra`.
    func tableRow(extra: inout [UInt8]) -> Row
    /// The record again, from its row, its metadata and the bytes its row appended.
    static func record(from row: Row, metadata: ObjectMeta, extra: UnsafeRawBufferPointer) -> Self
}

extension TableRecord {
    public var name: String { metadata.name }
}

/// A shared, immutable value for the rare field that would widen every row (an scrypt hash's
/// parameters, an unparsable hash, an `expiresAt` that is not canonical RFC 3339): one pointer.
final class RecordBox<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Records by name, laid out for 100,000 of them: one row per record in one array, every name and
/// every other variable-length field (a hash's salt and digest) in one byte arena, and an
/// open-addressing index of 32-bit row numbers. No object, heap `String` or dictionary bucket per
/// record: `records-memory-bench` measured a `[String: HashSecret]` of 100,000 at ~400 bytes per
/// entry (a dictionary keeps up to 2.6 buckets of 24 bytes per entry; each Swift object, `String`
/// beyond 15 bytes and array adds 16–32 bytes of header), the table at a third of that.
///
/// A value with copy-on-write storage, like the dictionary it replaces: a snapshot shares the
/// arrays of the table it was taken from, and the next change copies them (flat rows, so a copy is
/// close to `memcpy`). Reading a record builds it from its row (one small object); the review path
/// pays that instead of holding every record as an object.
public struct RecordTable<Record: TableRecord>: Sendable {
    /// 24 bytes before the row (offsets and counts in 32 bits, the namespace as a number, a
    /// resourceVersion as its number): the metadata took 56 when each row held its own namespace
    /// and resourceVersion strings and the entry its offsets as `Int`s. The arena holds the name,
    /// then a resourceVersion that is not a number, then the row's bytes.
    private struct Entry: Sendable {
        var offset: UInt32
        var nameCount: UInt32
        var extraCount: UInt32
        /// 0 for none, else the position in `namespaces` plus one.
        var namespace: UInt16
        var versionForm: VersionForm
        /// The resourceVersion's value (``VersionForm/number``) or its length in the arena (``VersionForm/text``).
        var version: UInt64
        /// `nil` for a removed entry, whose number is reused by the next insertion.
        var row: Record.Row?

        var start: Int { Int(offset) }
        var nameEnd: Int { Int(offset) + Int(nameCount) }
        var versionTextCount: Int { versionForm == .text ? Int(truncatingIfNeeded: version) : 0 }
        var extraStart: Int { nameEnd + versionTextCount }
        var end: Int { extraStart + Int(extraCount) }
        var byteCount: Int { end - start }
    }

    private enum VersionForm: UInt8, Sendable {
        case none
        /// Decimal digits without a leading zero that fit 64 bits: what kube-apiserver issues.
        case number
        case text
    }

    /// How `resourceVersion` is kept: a number when it reads back to the same text, else its bytes.
    private static func versionForm(of resourceVersion: String?) -> (VersionForm, UInt64) {
        guard let resourceVersion else { return (.none, 0) }
        let utf8 = resourceVersion.utf8
        if (1...19).contains(utf8.count), utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            utf8.first != UInt8(ascii: "0") || utf8.count == 1, let number = UInt64(resourceVersion)
        {
            return (.number, number)
        }
        return (.text, UInt64(utf8.count))
    }

    private func resourceVersion(of entry: Entry) -> String? {
        switch entry.versionForm {
        case .none: return nil
        case .number: return String(entry.version)
        case .text: return String(decoding: arena[entry.nameEnd..<entry.extraStart], as: UTF8.self)
        }
    }

    private var entries: [Entry] = []
    private var arena: [UInt8] = []
    /// The namespaces of the records, each once: one in practice (a source keeps only its
    /// namespace's records). A record of a namespace beyond ``maximumNamespaces`` is not stored.
    private var namespaces: [String] = []
    static var maximumNamespaces: Int { 64 }
    /// Row numbers by name hash, linear probing, at most half full; `-1` is empty.
    private var slots: [Int32] = []
    private var freeEntries: [Int32] = []
    /// Arena bytes that belong to removed or replaced records (reclaimed by ``compact()``).
    private var garbage = 0
    public private(set) var count = 0

    public init() {}

    public init(minimumCapacity: Int) {
        entries.reserveCapacity(minimumCapacity)
        slots = Array(repeating: -1, count: Self.slotCount(for: minimumCapacity))
    }

    /// The records by name; of two with the same name the last wins.
    public init(_ records: some Sequence<Record>) {
        self.init(minimumCapacity: records.underestimatedCount)
        for record in records { self[record.name] = record }
        shrinkToFit()
    }

    /// Gives back the room kept for growth (up to an eighth): for a table built in bulk that will
    /// now be read, or copied only when it next changes.
    public mutating func shrinkToFit() {
        entries = entries.withoutSpareCapacity
        arena = arena.withoutSpareCapacity
        freeEntries = freeEntries.withoutSpareCapacity
    }

    public var isEmpty: Bool { count == 0 }

    /// Room for `additional` more records, doubling: for a table built in bulk (a list arriving
    /// in parts), which then ends with ``shrinkToFit()``. Growing by an eighth, as single inserts
    /// do, copied the rows about eight times over such a build.
    public mutating func reserveCapacity(forAdding additional: Int) {
        let needed = count + additional
        guard needed > entries.capacity else { return }
        let target = Swift.max(needed, 2 * entries.capacity)
        let bytesPerRecord = count > 0 ? (arena.count - garbage) / count + 1 : 64
        entries.reserveCapacity(target - count + entries.count)
        arena.reserveCapacity(arena.count + (target - count) * bytesPerRecord)
        if slots.count < Self.slotCount(for: target) { rehash(Self.slotCount(for: target)) }
    }

    public subscript(name: String) -> Record? {
        get {
            guard let entry = find(name) else { return nil }
            return record(at: entries[entry], name: name)
        }
        set {
            if let newValue {
                insert(newValue, name: name)
            } else {
                remove(name)
            }
        }
    }

    public func contains(_ name: String) -> Bool { find(name) != nil }

    /// The row of `name`, without building its record (for walks over every record).
    func row(named name: String) -> Record.Row? {
        find(name).flatMap { entries[$0].row }
    }

    /// Each record's name, row and row bytes, without building the records (the census walks 100,000).
    func forEachRow(_ body: (String, Record.Row, UnsafeRawBufferPointer) -> Void) {
        arena.withUnsafeBytes { bytes in
            for entry in entries {
                guard let row = entry.row else { continue }
                body(name(of: entry), row, UnsafeRawBufferPointer(rebasing: bytes[entry.extraStart..<entry.end]))
            }
        }
    }

    /// Each record's name as bytes, with its place in the table (a number ``name(at:)``
    /// takes while the table is unchanged): for walks that compare names without making strings.
    package func forEachName(_ body: (Int, UnsafeRawBufferPointer) -> Void) {
        arena.withUnsafeBytes { bytes in
            for (place, entry) in entries.enumerated() where entry.row != nil {
                body(place, UnsafeRawBufferPointer(rebasing: bytes[entry.start..<entry.nameEnd]))
            }
        }
    }

    /// The name of the record at `place` (from ``forEachName(_:)``).
    package func name(at place: Int) -> String { name(of: entries[place]) }

    /// The records, in no particular order.
    public var values: [Record] {
        var values: [Record] = []
        values.reserveCapacity(count)
        for entry in entries { if let record = record(at: entry, name: name(of: entry)) { values.append(record) } }
        return values
    }

    /// The names, in no particular order.
    public var keys: [String] { entries.compactMap { $0.row == nil ? nil : name(of: $0) } }

    // MARK: - Storage

    private static func slotCount(for count: Int) -> Int {
        var slots = 16
        while slots < count.multipliedReportingOverflow(by: 2).partialValue { slots <<= 1 }
        return slots
    }

    /// Grows `array` by an eighth when `adding` would overflow it. An array left to itself doubles:
    /// at 100,000 records that left up to half of the rows and the arena allocated and unused.
    private static func reserveGrowth<Element>(_ array: inout [Element], adding: Int) {
        let needed = array.count + adding
        guard needed > array.capacity else { return }
        array.reserveCapacity(needed + needed / 8 + 16)
    }

    private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: bytes)
        return hasher.finalize()
    }

    private func name(of entry: Entry) -> String {
        String(decoding: arena[entry.start..<entry.nameEnd], as: UTF8.self)
    }

    private func record(at entry: Entry, name: String) -> Record? {
        guard let row = entry.row else { return nil }
        let metadata = ObjectMeta(
            name: name, namespace: entry.namespace == 0 ? nil : namespaces[Int(entry.namespace) - 1],
            resourceVersion: resourceVersion(of: entry))
        return arena.withUnsafeBytes { bytes in
            Record.record(from: row, metadata: metadata, extra: UnsafeRawBufferPointer(rebasing: bytes[entry.extraStart..<entry.end]))
        }
    }

    private static func withBytes<Result>(of name: String, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if let result = name.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(name.utf8).withUnsafeBytes(body)
    }

    /// The slot holding `name`'s entry, or the empty slot where it would go.
    private func probe(_ name: UnsafeRawBufferPointer) -> (slot: Int, entry: Int?) {
        let mask = slots.count - 1
        var slot = Self.hash(name) & mask
        return arena.withUnsafeBytes { arena in
            while true {
                let number = slots[slot]
                if number < 0 { return (slot, nil) }
                let entry = entries[Int(number)]
                if Int(entry.nameCount) == name.count,
                    memoryEquals(name, UnsafeRawBufferPointer(rebasing: arena[entry.start..<entry.nameEnd]))
                {
                    return (slot, Int(number))
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private func find(_ name: String) -> Int? {
        guard count > 0 else { return nil }
        return Self.withBytes(of: name) { probe($0).entry }
    }

    /// Stores `record` under `name`. A record the table cannot hold (its bytes would take the arena
    /// past 4 GiB, or it is of a 65th namespace) is not stored and removes an earlier one of that
    /// name: absent, as an unreadable record is (fail closed). Neither happens with a source's
    /// records, which are of one namespace and far smaller.
    private mutating func insert(_ record: Record, name: String) {
        guard let namespace = namespaceNumber(record.metadata.namespace) else { return remove(name) }
        if slots.count < Self.slotCount(for: count + 1) { rehash(Self.slotCount(for: count + 1)) }
        Self.reserveGrowth(&arena, adding: name.utf8.count + 128)
        if freeEntries.isEmpty { Self.reserveGrowth(&entries, adding: 1) }
        let offset = arena.count
        arena.append(contentsOf: name.utf8)
        let nameCount = arena.count - offset
        let (versionForm, version) = Self.versionForm(of: record.metadata.resourceVersion)
        if versionForm == .text, let text = record.metadata.resourceVersion { arena.append(contentsOf: text.utf8) }
        let extraStart = arena.count
        let row = record.tableRow(extra: &arena)
        guard arena.count <= UInt32.max else {
            arena.removeSubrange(offset...)
            return remove(name)
        }
        let entry = Entry(
            offset: UInt32(offset), nameCount: UInt32(nameCount), extraCount: UInt32(arena.count - extraStart),
            namespace: namespace, versionForm: versionForm, version: version, row: row)
        let found = arena.withUnsafeBytes { probe(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + nameCount])) }
        if let existing = found.entry {
            garbage += entries[existing].byteCount
            entries[existing] = entry
        } else {
            let number: Int
            if let reused = freeEntries.popLast() {
                number = Int(reused)
                entries[number] = entry
            } else {
                number = entries.count
                entries.append(entry)
            }
            slots[found.slot] = Int32(truncatingIfNeeded: number)
            count += 1
        }
        compactIfWasteful()
    }

    /// `namespace`'s number in the entries (0 for none), adding it when new; `nil` when the table
    /// already holds ``maximumNamespaces``.
    private mutating func namespaceNumber(_ namespace: String?) -> UInt16? {
        guard let namespace else { return 0 }
        if let index = namespaces.firstIndex(of: namespace) { return UInt16(index + 1) }
        guard namespaces.count < Self.maximumNamespaces else { return nil }
        namespaces.append(namespace)
        return UInt16(namespaces.count)
    }

    private mutating func remove(_ name: String) {
        guard count > 0 else { return }
        let found = Self.withBytes(of: name) { probe($0) }
        guard let number = found.entry else { return }
        let slot = found.slot
        garbage += entries[number].byteCount
        entries[number].row = nil
        freeEntries.append(Int32(truncatingIfNeeded: number))
        count -= 1
        // Backward-shift deletion: later entries of the probe run move up, so no tombstones.
        let mask = slots.count - 1
        var hole = slot
        var next = (hole + 1) & mask
        arena.withUnsafeBytes { arena in
            while slots[next] >= 0 {
                let entry = entries[Int(slots[next])]
                let home = Self.hash(UnsafeRawBufferPointer(rebasing: arena[entry.start..<entry.nameEnd])) & mask
                // The entry may move into the hole unless its home lies cyclically in (hole, next].
                let distanceToHole = (next &- hole) & mask
                let distanceToHome = (next &- home) & mask
                if distanceToHome >= distanceToHole {
                    slots[hole] = slots[next]
                    hole = next
                }
                next = (next + 1) & mask
            }
        }
        slots[hole] = -1
        compactIfWasteful()
    }

    private mutating func rehash(_ slotCount: Int) {
        slots = Array(repeating: -1, count: slotCount)
        let mask = slotCount - 1
        arena.withUnsafeBytes { arena in
            for (number, entry) in entries.enumerated() where entry.row != nil {
                var slot = Self.hash(UnsafeRawBufferPointer(rebasing: arena[entry.start..<entry.nameEnd])) & mask
                while slots[slot] >= 0 { slot = (slot + 1) & mask }
                slots[slot] = Int32(truncatingIfNeeded: number)
            }
        }
    }

    /// Rewrites the arena without removed and replaced records' bytes once they are most of it,
    /// and drops trailing removed entries.
    private mutating func compactIfWasteful() {
        guard garbage > 64 * 1024, garbage * 2 > arena.count else { return }
        var fresh: [UInt8] = []
        fresh.reserveCapacity(arena.count - garbage)
        for index in entries.indices where entries[index].row != nil {
            let entry = entries[index]
            let offset = UInt32(truncatingIfNeeded: fresh.count)
            fresh.append(contentsOf: arena[entry.start..<entry.end])
            entries[index].offset = offset
        }
        arena = fresh
        garbage = 0
    }

    /// Bytes held (rows, arena, index), for the memory benchmark.
    package var storageBytes: Int {
        entries.capacity * MemoryLayout<Entry>.stride + arena.capacity + slots.capacity * 4 + freeEntries.capacity * 4
    }
}

extension RecordTable: Sequence {
    public typealias Element = (key: String, value: Record)

    public struct Iterator: IteratorProtocol {
        fileprivate let table: RecordTable
        fileprivate var index = 0

        public mutating func next() -> Element? {
            while index < table.entries.count {
                let entry = table.entries[index]
                index += 1
                guard entry.row != nil else { continue }
                let name = table.name(of: entry)
                if let record = table.record(at: entry, name: name) { return (name, record) }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(table: self) }
    public var underestimatedCount: Int { count }
}

/// Byte equality for names (not secret material: the index compares names it was asked for).
private func memoryEquals(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
    lhs.count == rhs.count && lhs.elementsEqual(rhs)
}

extension Array {
    /// The same elements in storage of their count (a copy only when there is room to give back):
    /// for arrays built up and then kept, which growth leaves up to half empty.
    package var withoutSpareCapacity: [Element] {
        capacity > count ? withUnsafeBufferPointer { Array($0) } : self
    }
}
