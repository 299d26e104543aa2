import BerthSystem

/// The subset of Go templates that `docker inspect -f` is used with, evaluated over a
/// ``JSONValue``: literal text, and actions `{{ .A.B }}` (spaces allowed, `{{-`/`-}}` trim),
/// `{{json .X}}`, `{{index .X "key" 0}}`, `{{len .X}}`, `{{upper .X}}`, `{{lower .X}}`,
/// `{{join .X ", "}}`, and parenthesised sub-expressions with a field chain:
/// `{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}`.
///
/// Values print as Go's `fmt` prints them (`true`, `[a b]`, `map[k:v]`, `{a b}` for structs,
/// `<nil>`). Errors read like Go's, for example
/// `template: :1:3: executing "" at <.NetworkSettings.Nope>: map has no entry for key "Nope"`
/// (Docker's CLI prefixes them with `Template parsing error: `).
public struct InspectTemplate: Sendable {
    indirect enum Node: Sendable {
        case dot
        case field(base: Node?, names: [String])
        case string(String)
        case number(Int64)
        case call(String, [Node])
    }

    enum Segment: Sendable {
        case text(String)
        case action(Node, offset: Int, source: String)
    }

    private let segments: [Segment]
    private let source: String

    /// Parses a template.
    /// - Parameter text: The `-f` argument.
    public init(_ text: String) throws {
        source = text
        segments = try TemplateParser(text).parse()
    }

    /// Runs the template over `value`.
    /// - Parameter value: The inspect document.
    /// - Returns: The rendered text (no newline is added).
    public func render(_ value: JSONValue) throws -> String {
        var out = ""
        for segment in segments {
            switch segment {
            case .text(let t): out += t
            case .action(let node, let offset, let text):
                do { out += InspectTemplate.display(try evaluate(node, on: value)) } catch let failure as Failure {
                    throw BerthError(.invalidArgument,
                                     "template: :\(position(offset)): executing \"\" at <\(failure.at ?? text)>: \(failure.message)")
                }
            }
        }
        return out
    }

    struct Failure: Error {
        var at: String?
        var message: String
    }

    private func position(_ offset: Int) -> String {
        let before = source.utf8.prefix(offset)
        let line = 1 + before.filter { $0 == UInt8(ascii: "\n") }.count
        let lastNewline = before.lastIndex(of: UInt8(ascii: "\n")).map { before.distance(from: before.startIndex, to: $0) }
        return "\(line):\(offset - (lastNewline.map { $0 + 1 } ?? 0))"
    }

    private func evaluate(_ node: Node, on root: JSONValue) throws -> JSONValue {
        switch node {
        case .dot: return root
        case .string(let s): return .string(s)
        case .number(let n): return .int(n)
        case .field(let base, let names):
            let start = try base.map { try evaluate($0, on: root) } ?? root
            do { return try InspectTemplate.walk(start, names) } catch var failure as Failure {
                failure.at = failure.at ?? InspectTemplate.describe(node)
                throw failure
            }
        case .call(let name, let args):
            let values = try args.map { try evaluate($0, on: root) }
            do { return try InspectTemplate.call(name, values) } catch var failure as Failure {
                failure.at = failure.at ?? InspectTemplate.describe(node)
                throw failure
            }
        }
    }

    /// Go's rendering of a node in error messages (`.A.B`, `index .X "k"`, `(index .X 0).Port`).
    static func describe(_ node: Node) -> String {
        switch node {
        case .dot: return "."
        case .string(let s): return "\"\(s)\""
        case .number(let n): return String(n)
        case .field(nil, let names): return "." + names.joined(separator: ".")
        case .field(let base?, let names): return "(\(describe(base)))." + names.joined(separator: ".")
        case .call(let name, let args): return ([name] + args.map(describe)).joined(separator: " ")
        }
    }

    private static func walk(_ start: JSONValue, _ names: [String]) throws -> JSONValue {
        var current = start
        for name in names {
            switch current {
            case .object(let o):
                // Docker retries a failed template on the raw JSON map, so a missing field always
                // reports as a missing map key.
                guard let next = o[name] else { throw Failure(message: "map has no entry for key \"\(name)\"") }
                current = next
            case .null:
                throw Failure(message: "nil pointer evaluating interface {}.\(name)")
            default:
                throw Failure(message: "can't evaluate field \(name) in type \(InspectTemplate.goType(current))")
            }
        }
        return current
    }

    static let functions: Set<String> = ["json", "index", "len", "upper", "lower", "join"]

    private static func call(_ name: String, _ args: [JSONValue]) throws -> JSONValue {
        func arity(_ n: Int) throws {
            guard args.count == n else { throw Failure(message: "wrong number of args for \(name): want \(n) got \(args.count)") }
        }
        switch name {
        case "json":
            try arity(1)
            return .string(args[0].compact(escapeHTML: false))
        case "len":
            try arity(1)
            switch args[0] {
            case .array(let a): return .int(Int64(a.count))
            case .object(let o): return .int(Int64(o.members.count))
            case .string(let s): return .int(Int64(s.utf8.count))
            default: throw Failure(message: "error calling len: len of type \(goType(args[0]))")
            }
        case "upper", "lower":
            try arity(1)
            let s = display(args[0])
            return .string(name == "upper" ? s.uppercased() : s.lowercased())
        case "join":
            try arity(2)
            guard case .array(let items) = args[0] else {
                if case .null = args[0] { return .string("") }
                throw Failure(message: "error calling join: expected a list, got \(goType(args[0]))")
            }
            return .string(items.map(display).joined(separator: display(args[1])))
        case "index":
            guard var current = args.first else { throw Failure(message: "wrong number of args for index: want at least 1 got 0") }
            for key in args.dropFirst() {
                switch (current, key) {
                case (.object(let o), .string(let k)):
                    current = o[k] ?? .null
                case (.array(let a), .int(let i)):
                    guard i >= 0, i < a.count else { throw Failure(message: "error calling index: index out of range: \(i)") }
                    current = a[Int(i)]
                case (.null, _):
                    throw Failure(message: "error calling index: index of untyped nil")
                default:
                    throw Failure(message: "error calling index: cannot index \(goType(current)) with \(goType(key))")
                }
            }
            return current
        default:
            throw Failure(message: "function \"\(name)\" not defined")
        }
    }

    static func goType(_ v: JSONValue) -> String {
        switch v {
        case .null: return "<nil>"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float64"
        case .string: return "string"
        case .array: return "[]interface {}"
        case .object(let o): return o.isMap ? "map[string]interface {}" : "struct"
        }
    }

    /// Go's `%v` formatting of a value.
    static func display(_ v: JSONValue) -> String {
        switch v {
        case .null: return "<nil>"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return JSONValue.format(d)
        case .string(let s): return s
        case .array(let a): return "[" + a.map(display).joined(separator: " ") + "]"
        case .object(let o):
            if o.isMap {
                return "map[" + o.members.sorted { $0.0 < $1.0 }.map { "\($0.0):\(display($0.1))" }.joined(separator: " ") + "]"
            }
            return "{" + o.members.map { display($0.1) }.joined(separator: " ") + "}"
        }
    }
}

/// Splits a template into text and actions and parses each action.
struct TemplateParser {
    private let bytes: [UInt8]
    private let text: String

    init(_ text: String) {
        self.text = text
        bytes = Array(text.utf8)
    }

    private func error(_ message: String, at offset: Int) -> BerthError {
        let line = 1 + bytes[..<min(offset, bytes.count)].filter { $0 == UInt8(ascii: "\n") }.count
        return BerthError(.invalidArgument, "template: :\(line): \(message)")
    }

    func parse() throws -> [InspectTemplate.Segment] {
        var segments: [InspectTemplate.Segment] = []
        var i = 0
        var pendingText: [UInt8] = []
        var trimNextText = false
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "{"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "{") {
                var start = i + 2
                if start + 1 < bytes.count, bytes[start] == UInt8(ascii: "-"), isSpace(bytes[start + 1]) {
                    while let last = pendingText.last, isSpace(last) { pendingText.removeLast() }
                    start += 1
                }
                if !pendingText.isEmpty { segments.append(.text(String(decoding: pendingText, as: UTF8.self))) }
                pendingText = []
                guard let close = findClose(from: start) else { throw error("unclosed action", at: i) }
                var end = close
                trimNextText = false
                if end - 1 > start, bytes[end - 1] == UInt8(ascii: "-"), isSpace(bytes[end - 2]) {
                    end -= 1
                    trimNextText = true
                }
                var lexer = ActionLexer(bytes: bytes, range: start..<end)
                let node = try parseExpression(&lexer, topLevel: true)
                guard lexer.peek() == nil else { throw error("unexpected \"\(lexer.peekText())\" in operand", at: start) }
                let firstNonSpace = (start..<end).first { !isSpace(bytes[$0]) } ?? start
                let lastNonSpace = (start..<end).last { !isSpace(bytes[$0]) } ?? start
                segments.append(.action(node, offset: firstNonSpace,
                                        source: String(decoding: bytes[firstNonSpace...lastNonSpace], as: UTF8.self)))
                i = close + 2
                if trimNextText { while i < bytes.count, isSpace(bytes[i]) { i += 1 } }
                continue
            }
            pendingText.append(bytes[i])
            i += 1
        }
        if !pendingText.isEmpty { segments.append(.text(String(decoding: pendingText, as: UTF8.self))) }
        return segments
    }

    private func findClose(from start: Int) -> Int? {
        var i = start
        var inString = false
        while i + 1 < bytes.count {
            if inString {
                if bytes[i] == UInt8(ascii: "\\") { i += 2; continue }
                if bytes[i] == UInt8(ascii: "\"") { inString = false }
            } else if bytes[i] == UInt8(ascii: "\"") {
                inString = true
            } else if bytes[i] == UInt8(ascii: "}"), bytes[i + 1] == UInt8(ascii: "}") {
                return i
            }
            i += 1
        }
        return nil
    }

    private func parseExpression(_ lexer: inout ActionLexer, topLevel: Bool) throws -> InspectTemplate.Node {
        guard let token = lexer.peek() else { throw error("missing value for command", at: lexer.offset) }
        if case .identifier(let name) = token {
            _ = lexer.next()
            guard InspectTemplate.functions.contains(name) else {
                if ["range", "if", "with", "end", "else", "define", "template", "block"].contains(name) {
                    throw error("\"\(name)\" actions are not supported by berth inspect", at: lexer.offset)
                }
                throw error("function \"\(name)\" not defined", at: lexer.offset)
            }
            var args: [InspectTemplate.Node] = []
            while let t = lexer.peek(), t != .closeParen { args.append(try parseOperand(&lexer)) }
            return .call(name, args)
        }
        let operand = try parseOperand(&lexer)
        if let t = lexer.peek(), t != .closeParen {
            throw error("can't give argument to non-function \(describe(operand))", at: lexer.offset)
        }
        return operand
    }

    private func parseOperand(_ lexer: inout ActionLexer) throws -> InspectTemplate.Node {
        guard let token = lexer.next() else { throw error("missing value for command", at: lexer.offset) }
        switch token {
        case .dot: return .dot
        case .fields(let names): return .field(base: nil, names: names)
        case .string(let s): return .string(s)
        case .number(let n): return .number(n)
        case .openParen:
            let inner = try parseExpression(&lexer, topLevel: false)
            guard lexer.next() == .closeParen else { throw error("unclosed left paren", at: lexer.offset) }
            if case .fields(let names)? = lexer.peekAdjacentFields() {
                _ = lexer.next()
                return .field(base: inner, names: names)
            }
            return inner
        case .identifier(let name):
            throw error("function \"\(name)\" used as an argument; wrap it in parentheses", at: lexer.offset)
        case .closeParen:
            throw error("unexpected right paren", at: lexer.offset)
        case .bad(let text):
            throw error("bad character in action: \"\(text)\"", at: lexer.offset)
        }
    }

    private func describe(_ node: InspectTemplate.Node) -> String {
        switch node {
        case .dot: return "."
        case .field(_, let names): return "." + names.joined(separator: ".")
        case .string(let s): return "\"\(s)\""
        case .number(let n): return String(n)
        case .call(let name, _): return name
        }
    }

    private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d }
}

/// Tokens inside one action.
struct ActionLexer {
    enum Token: Equatable {
        case dot, fields([String]), string(String), number(Int64), identifier(String), openParen, closeParen, bad(String)
    }

    let bytes: [UInt8]
    var offset: Int
    let end: Int
    private var lookahead: (Token, Int)?

    init(bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        offset = range.lowerBound
        end = range.upperBound
    }

    mutating func peek() -> Token? {
        if let (t, _) = lookahead { return t }
        let saved = offset
        guard let t = scan() else { offset = saved; return nil }
        lookahead = (t, offset)
        offset = saved
        return t
    }

    mutating func peekText() -> String {
        guard let t = peek() else { return "" }
        return String(describing: t)
    }

    mutating func next() -> Token? {
        if let (t, after) = lookahead { lookahead = nil; offset = after; return t }
        return scan()
    }

    /// A field chain glued to the previous token, as in `(…).HostPort`.
    mutating func peekAdjacentFields() -> Token? {
        guard lookahead == nil, offset < end, bytes[offset] == UInt8(ascii: "."), offset + 1 < end, isIdentStart(bytes[offset + 1]) else {
            return nil
        }
        return peek()
    }

    private func isIdentStart(_ b: UInt8) -> Bool { b == UInt8(ascii: "_") || (65...90).contains(b) || (97...122).contains(b) }
    private func isIdent(_ b: UInt8) -> Bool { isIdentStart(b) || (48...57).contains(b) }

    private mutating func scan() -> Token? {
        while offset < end, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[offset]) { offset += 1 }
        guard offset < end else { return nil }
        let c = bytes[offset]
        switch c {
        case UInt8(ascii: "("): offset += 1; return .openParen
        case UInt8(ascii: ")"): offset += 1; return .closeParen
        case UInt8(ascii: "."):
            var names: [String] = []
            while offset < end, bytes[offset] == UInt8(ascii: ".") {
                let start = offset + 1
                var i = start
                while i < end, isIdent(bytes[i]) { i += 1 }
                if i == start { break }
                names.append(String(decoding: bytes[start..<i], as: UTF8.self))
                offset = i
            }
            if names.isEmpty { offset += 1; return .dot }
            return .fields(names)
        case UInt8(ascii: "\""):
            var s: [UInt8] = []
            var i = offset + 1
            while i < end, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\"), i + 1 < end {
                    i += 1
                    switch bytes[i] {
                    case UInt8(ascii: "n"): s.append(0x0a)
                    case UInt8(ascii: "t"): s.append(0x09)
                    default: s.append(bytes[i])
                    }
                } else {
                    s.append(bytes[i])
                }
                i += 1
            }
            guard i < end else { offset = end; return .bad("unterminated quoted string") }
            offset = i + 1
            return .string(String(decoding: s, as: UTF8.self))
        default:
            if (48...57).contains(c) || c == UInt8(ascii: "-") {
                var i = offset + 1
                while i < end, (48...57).contains(bytes[i]) { i += 1 }
                let text = String(decoding: bytes[offset..<i], as: UTF8.self)
                offset = i
                return Int64(text).map(Token.number) ?? .bad(text)
            }
            if isIdentStart(c) {
                var i = offset + 1
                while i < end, isIdent(bytes[i]) { i += 1 }
                let name = String(decoding: bytes[offset..<i], as: UTF8.self)
                offset = i
                return .identifier(name)
            }
            offset += 1
            return .bad(String(decoding: [c], as: UTF8.self))
        }
    }
}
