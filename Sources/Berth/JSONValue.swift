/// A JSON document that keeps object keys in the order they were added, so that `inspect` prints
/// fields in Docker's order, and that remembers whether an object stands for a Go struct or a Go
/// map (Docker's templates print the two differently: `{a b}` versus `map[k:v]`).
public indirect enum JSONValue: Sendable, Equatable {
    /// `null` (a Go nil slice, map or pointer).
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// An integer, printed without a fraction.
    case int(Int64)
    /// A floating-point number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object with ordered members.
    case object(JSONObject)

    /// An object standing for a Go struct (fields in declaration order).
    /// - Parameter members: Key/value pairs in order.
    public static func structure(_ members: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(members, isMap: false)) }

    /// An object standing for a Go map (printed with sorted keys by templates).
    /// - Parameter members: Key/value pairs in order.
    public static func map(_ members: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(members, isMap: true)) }

    /// A string array, or `null` when empty (Go's nil slice).
    /// - Parameter strings: The elements.
    public static func strings(_ strings: [String]) -> JSONValue { strings.isEmpty ? .null : .array(strings.map(JSONValue.string)) }

    /// The member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// Go's `json.MarshalIndent(v, "", "    ")` output (what `docker inspect` prints).
    /// - Parameter indent: The indentation unit.
    public func pretty(indent: String = "    ") -> String {
        var out = ""
        write(to: &out, indent: indent, level: 0)
        return out
    }

    /// Compact JSON, as Go's `json.Marshal`.
    /// - Parameter escapeHTML: Whether to escape `<`, `>` and `&` (Go's encoder default; Docker's
    ///   `json` template function turns it off).
    public func compact(escapeHTML: Bool = true) -> String {
        var out = ""
        write(to: &out, indent: nil, level: 0, escapeHTML: escapeHTML)
        return out
    }

    private func write(to out: inout String, indent: String?, level: Int, escapeHTML: Bool = true) {
        func newline(_ l: Int) {
            if let indent { out += "\n" + String(repeating: indent, count: l) }
        }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += JSONValue.format(d)
        case .string(let s): JSONValue.quote(s, into: &out, escapeHTML: escapeHTML)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                item.write(to: &out, indent: indent, level: level + 1, escapeHTML: escapeHTML)
            }
            newline(level)
            out += "]"
        case .object(let o):
            if o.members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (key, value)) in o.members.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                JSONValue.quote(key, into: &out, escapeHTML: escapeHTML)
                out += indent == nil ? ":" : ": "
                value.write(to: &out, indent: indent, level: level + 1, escapeHTML: escapeHTML)
            }
            newline(level)
            out += "}"
        }
    }

    /// Go's float formatting for JSON: integers without a fraction, otherwise the shortest form.
    static func format(_ d: Double) -> String {
        if d.isFinite, d == d.rounded(), abs(d) < 1e21 { return String(Int64(d)) }
        return String(d)
    }

    /// Quotes like Go's encoding/json, which also escapes `<`, `>`, `&`, U+2028 and U+2029.
    static func quote(_ s: String, into out: inout String, escapeHTML: Bool = true) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<" where escapeHTML, ">" where escapeHTML, "&" where escapeHTML:
                out += "\\u" + String(scalar.value, radix: 16).leftPaddedHex(4)
            case "\u{2028}", "\u{2029}":
                out += "\\u" + String(scalar.value, radix: 16).leftPaddedHex(4)
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(scalar.value, radix: 16).leftPaddedHex(4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// The members of a ``JSONValue`` object, in order.
public struct JSONObject: Sendable, Equatable {
    /// Key/value pairs in insertion order.
    public var members: [(String, JSONValue)]
    /// Whether this stands for a Go map (rather than a struct).
    public var isMap: Bool

    /// - Parameters:
    ///   - members: Key/value pairs.
    ///   - isMap: Whether a Go map.
    public init(_ members: [(String, JSONValue)], isMap: Bool) {
        self.members = members
        self.isMap = isMap
    }

    /// The value for `key`, if present.
    public subscript(key: String) -> JSONValue? { members.first { $0.0 == key }?.1 }

    public static func == (l: JSONObject, r: JSONObject) -> Bool {
        l.isMap == r.isMap && l.members.count == r.members.count
            && zip(l.members, r.members).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

extension String {
    fileprivate func leftPaddedHex(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
