/// The demo's in-memory users, with a hard size bound so a load test that registers
/// users forever cannot exhaust memory.
public struct UserStore: Sendable {
    public struct User: Sendable, Equatable {
        public var id: Int
        public var name: String
        public var email: String
    }

    public enum Failure: Error, Equatable {
        case duplicateEmail
        case full
    }

    public private(set) var users: [Int: User] = [:]
    private var emails: Set<String> = []
    private var nextID = 1
    public let capacity: Int

    public init(capacity: Int = 10_000, seeded: Bool = true) {
        self.capacity = capacity
        if seeded {
            for (name, email) in [("Alice", "alice@example.com"), ("Bob", "bob@example.com"), ("Carol", "carol@example.com")] {
                _ = try? add(name: name, email: email)
            }
        }
    }

    public mutating func add(name: String, email: String) throws(Failure) -> User {
        let key = email.lowercased()
        guard !emails.contains(key) else { throw .duplicateEmail }
        guard users.count < capacity else { throw .full }
        let user = User(id: nextID, name: name, email: email)
        nextID += 1
        users[user.id] = user
        emails.insert(key)
        return user
    }

    public func user(id: Int) -> User? { users[id] }

    /// Users in id order, at most `limit`.
    public func list(limit: Int = 100) -> [User] {
        users.values.sorted { $0.id < $1.id }.prefix(limit).map { $0 }
    }
}
