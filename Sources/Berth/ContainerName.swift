import BerthSystem

/// Container names: validation and Docker-style generated names (`adjective_surname`).
public enum ContainerName {
    /// Checks `name` against Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two
    /// characters). A leading `/` is accepted and dropped, as Docker does.
    /// - Parameter name: The requested name.
    /// - Returns: The name without a leading `/`.
    @discardableResult
    public static func validate(_ name: String) throws -> String {
        let bare = name.hasPrefix("/") ? String(name.dropFirst()) : name
        let u = Array(bare.utf8)
        func alnum(_ c: UInt8) -> Bool {
            (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c)
        }
        guard u.count >= 2, alnum(u[0]),
            u.dropFirst().allSatisfy({ alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw BerthError(.invalidArgument, "Invalid container name (\(name)), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        return bare
    }

    /// A random `adjective_surname` name. From the second attempt on, a digit is appended, which
    /// makes a collision with an existing name unlikely even when the word pairs run short.
    /// - Parameter attempt: 0 for the first try, then 1, 2, …
    public static func generate(attempt: Int = 0) -> String {
        var name: String
        repeat {
            name = adjectives.randomElement()! + "_" + surnames.randomElement()!
        } while name == "boring_wozniak"  // Steve Wozniak is not boring (a tradition kept from Docker)
        if attempt > 0 { name += String(Int.random(in: 0...9)) }
        return name
    }

    /// How many generated names the store tries before it falls back to the short id.
    public static let generationAttempts = 6

    /// Adjectives for generated names.
    public static let adjectives: [String] = [
        "agile", "amazing", "ardent", "bold", "boring", "brave", "bright", "busy", "calm", "careful",
        "charming", "cheerful", "clever", "cool", "curious", "daring", "dazzling", "determined", "diligent", "eager",
        "earnest", "elated", "elegant", "epic", "fearless", "fervent", "festive", "focused", "friendly", "gallant",
        "gentle", "gifted", "glad", "graceful", "happy", "hardy", "honest", "hopeful", "humble", "inspired",
        "jolly", "jovial", "keen", "kind", "lively", "loyal", "lucid", "magical", "merry", "mighty",
        "modest", "nifty", "nimble", "noble", "patient", "peaceful", "playful", "proud", "quick", "quiet",
        "radiant", "rapid", "relaxed", "resolute", "serene", "sharp", "sleepy", "smart", "steady", "stoic",
        "sturdy", "sunny", "swift", "tender", "thirsty", "tidy", "trusting", "upbeat", "vibrant", "vigilant",
        "vivid", "warm", "wise", "witty", "youthful", "zealous", "zen",
    ]

    /// Surnames of notable scientists and engineers for generated names.
    public static let surnames: [String] = [
        "agnesi", "al_khwarizmi", "allen", "ampere", "archimedes", "babbage", "backus", "bardeen", "bartik", "bell",
        "berners_lee", "bernoulli", "bohr", "boole", "borg", "bose", "brahe", "brattain", "carson", "cerf",
        "chandrasekhar", "clarke", "cohen", "conway", "copernicus", "cori", "cray", "curie", "darwin", "dijkstra",
        "dirac", "edison", "einstein", "elion", "engelbart", "euclid", "euler", "faraday", "fermat", "fermi",
        "feynman", "fibonacci", "franklin", "galileo", "galois", "gauss", "germain", "goldberg", "goodall", "gould",
        "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hopper", "hoover", "hubble", "huffman", "hypatia",
        "jackson", "jemison", "johnson", "joliot", "kalam", "kepler", "kilby", "knuth", "kowalevski", "lamarr",
        "lamport", "laplace", "leakey", "leibniz", "liskov", "lovelace", "lumiere", "maxwell", "mayer", "mccarthy",
        "mcclintock", "meitner", "mendel", "mendeleev", "minsky", "mirzakhani", "moore", "morse", "napier", "newton",
        "nobel", "noether", "noyce", "ohm", "pascal", "pasteur", "pauling", "perlman", "planck", "poincare",
        "ramanujan", "raman", "ritchie", "rosalind", "rutherford", "sagan", "salk", "shannon", "shockley", "sinoussi",
        "snyder", "sutherland", "swanson", "tesla", "thompson", "torvalds", "turing", "volta", "von_neumann", "wiles",
        "wilson", "wing", "wozniak", "wright", "yalow", "yonath", "zuse",
    ]
}
