/// Outbound user events from ``ProxyHandler`` to ``ClientTimeoutHandler``, which sits
/// below the HTTP codec and cannot see request boundaries itself.
enum ClientConnectionEvent: Sendable {
    case requestHeadReceived
    case responseCompleted
}
