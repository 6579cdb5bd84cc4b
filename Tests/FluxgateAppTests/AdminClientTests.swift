import FluxgateApp
import FluxgateCore
import FluxgateTestSupport
import NIOCore
import NIOPosix
import Testing

/// `fluxgate reload` and `fluxgate healthcheck` talk to the admin listener through
/// `AdminClient`: each way of getting no answer is a `Failure` in words, never a crash
/// (the debug build stopped on an unfulfilled promise when nothing listened).
@Suite(.timeLimit(.minutes(1)))
struct AdminClientTests {
    /// A listener that does `reply` with each connection's first read (nil: nothing, ever).
    final class Listener: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let reply: String?
        init(reply: String?) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let reply else { return }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(NIOAny(ByteBuffer(string: reply))).whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    func listen(reply: String?, group: any EventLoopGroup) async throws -> (any Channel, SocketEndpoint) {
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.pipeline.addHandler(Listener(reply: reply)) }
            .bind(host: "127.0.0.1", port: 0).get()
        return (channel, SocketEndpoint(host: "127.0.0.1", port: try #require(channel.localAddress?.port)))
    }

    @Test func anAnswerIsReturned() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (server, endpoint) = try await listen(reply: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\nnot ready\n", group: group)
        let (status, body) = try await AdminClient.request("GET", path: "/readyz", to: endpoint)
        #expect(status == 503 && body == "not ready\n")
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// A port nothing listens on (``deadPort(group:)``, below the ephemeral range). Until
    /// 2026-12-07 a port-0 listener was opened and closed to free a port, and now and then
    /// another test's listener, binding port 0 in parallel, got the same port and
    /// answered the request (no error thrown: a red run of `swift test`).
    @Test func nothingListeningIsNamed() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let endpoint = SocketEndpoint(host: "127.0.0.1", port: try await deadPort(group: group))
        await #expect {
            _ = try await AdminClient.request("POST", path: "/reload", to: endpoint)
        } throws: { error in
            "\(error)" == "cannot reach the admin listener at \(endpoint): connection refused (is the gateway running, with admin_listen \(endpoint)?)"
        }
        try await group.shutdownGracefully()
    }

    @Test func aListenerThatNeverAnswersTimesOut() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (server, endpoint) = try await listen(reply: nil, group: group)
        await #expect {
            _ = try await AdminClient.request("GET", path: "/healthz", to: endpoint, answerTimeout: .milliseconds(100))
        } throws: { error in
            "\(error)" == "the admin listener at \(endpoint) accepted the connection but sent no complete answer within 100 ms"
        }
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test func aCloseWithoutAnAnswerIsNamed() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (server, endpoint) = try await listen(reply: "SSH-2.0-OpenSSH\r\n", group: group)
        await #expect {
            _ = try await AdminClient.request("GET", path: "/healthz", to: endpoint)
        } throws: { error in
            "\(error)" == "the admin listener at \(endpoint) closed without an HTTP answer: \"SSH-2.0-OpenSSH\r\n\""
        }
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test func aReloadAnswerThatIsNoReloadResultIsNamed() {
        let endpoint = SocketEndpoint(host: "127.0.0.1", port: 8080)
        #expect(AdminClient.reloadAnswerProblem(status: 200, from: endpoint) == nil)
        #expect(AdminClient.reloadAnswerProblem(status: 422, from: endpoint) == nil)  // refused: the JSON says why
        #expect(
            AdminClient.reloadAnswerProblem(status: 404, from: endpoint)
                == "127.0.0.1:8080 answered 404 to POST /reload, not a reload result: is it the gateway's admin listener (admin_listen), not its data port?")
    }

    @Test func aHealthcheckPathThatIsNoOriginFormTargetIsNamed() {
        #expect(AdminClient.pathProblem("/healthz") == nil)
        #expect(AdminClient.pathProblem("/readyz?verbose=1") == nil)
        #expect(AdminClient.pathProblem("readyz") == "--path: \"readyz\" must start with / (such as /healthz or /readyz)")
        #expect(AdminClient.pathProblem("") != nil)
        #expect(AdminClient.pathProblem("/a b") == "--path: \"/a b\" may hold visible ASCII characters only (percent-encode the rest)")
        #expect(AdminClient.pathProblem("/x\r\nX-Injected: 1") != nil)
        #expect(AdminClient.pathProblem("/caf\u{E9}") != nil)
    }

    /// `fluxgate reload` without `--admin` asks the listener the config file names; one
    /// on every interface is asked on loopback (it listens there too), and port 0 cannot
    /// be asked at all.
    @Test func aReloadAsksTheListenerTheFileNames() throws {
        let asked = { (text: String) in AdminClient.endpoint(askingListener: SocketEndpoint.parseListen(text)!) }
        #expect(asked("127.0.0.1:9191") == SocketEndpoint(host: "127.0.0.1", port: 9191))
        #expect(asked("0.0.0.0:9090") == SocketEndpoint(host: "127.0.0.1", port: 9090))
        #expect(asked("*:9090") == SocketEndpoint(host: "127.0.0.1", port: 9090))
        #expect(asked("[::]:9090") == SocketEndpoint(host: "::1", port: 9090))
        #expect(asked("[::1]:9090") == SocketEndpoint(host: "::1", port: 9090))
        #expect(asked("10.0.0.5:9090") == SocketEndpoint(host: "10.0.0.5", port: 9090))
        #expect(asked("127.0.0.1:0") == nil)
        // And through the loader, as the command reads it.
        let config = try ConfigLoader.load(yaml: "admin_listen: 0.0.0.0:9191\n")
        #expect(AdminClient.endpoint(askingListener: config.adminListen) == SocketEndpoint(host: "127.0.0.1", port: 9191))
    }
}
