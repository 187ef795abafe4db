import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket

extension KubeAPITestServer {
    /// `…/pods/NAME/exec` over WebSocket with the `v5.channel.k8s.io` subprotocol, as kubectl 1.30+
    /// speaks it: stdin (channel 0) is echoed to stdout (1), a line naming the command goes to
    /// stderr (2), and when stdin closes (the v5 close signal, 255 0) the exit status goes to the
    /// error channel (3) as a `Status`. The exit code is N for a command argument `exit=N`, else 0.
    func execUpgrader() -> NIOWebSocketServerUpgrader {
        NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, head in
                let offered = head.headers["sec-websocket-protocol"].flatMap { $0.split(separator: ",") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard head.uri.contains("/exec?"), offered.contains("v5.channel.k8s.io"), self.authorized(head.headers) else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                self.record(head)
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders([("Sec-WebSocket-Protocol", "v5.channel.k8s.io")]))
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    _ = try pipeline.removeHandler(context: pipeline.context(handlerType: APIConnectionHandler.self))
                    try pipeline.addHandler(ExecSession(uri: head.uri))
                }
            })
    }
}

/// One exec session (see ``KubeAPITestServer/execUpgrader()``).
final class ExecSession: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let command: [String]
    private let stdin: Bool
    private var finished = false

    init(uri: String) {
        let items = URLComponents(string: uri)?.queryItems ?? []
        command = items.filter { $0.name == "command" }.compactMap(\.value)
        stdin = items.contains { $0.name == "stdin" && ($0.value == "true" || $0.value == "1") }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private var started = false

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        send(2, Array("exec: \(command.joined(separator: " "))\n".utf8), context: context)
        if !stdin { finish(context: context) }
    }

    private func send(_ stream: UInt8, _ bytes: [UInt8], context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: bytes.count + 1)
        buffer.writeInteger(stream)
        buffer.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: buffer)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            var data = frame.unmaskedData
            guard let stream: UInt8 = data.readInteger() else { return }
            let rest = data.readBytes(length: data.readableBytes) ?? []
            if stream == 0 {
                send(1, rest, context: context)
            } else if stream == 255, rest.first == 0 {
                finish(context: context)
            }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            finish(context: context)
        default:
            break
        }
    }

    private func finish(context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        let code = command.compactMap { $0.hasPrefix("exit=") ? Int($0.dropFirst(5)) : nil }.last ?? 0
        let status: String
        if code == 0 {
            status = #"{"metadata":{},"status":"Success"}"#
        } else {
            status =
                #"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit code \#(code)","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"\#(code)"}]}}"#
        }
        send(3, Array(status.utf8), context: context)
        var close = context.channel.allocator.buffer(capacity: 2)
        close.write(webSocketErrorCode: .normalClosure)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: close))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// `Upgrade: kube-api-auth-echo`: after the `101`, every byte is sent back as it arrives, for as
/// long as the connection stays open (the proxy's splice, tested without WebSocket framing).
final class EchoUpgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
    let supportedProtocol = "kube-api-auth-echo"
    let requiredUpgradeHeaders: [String] = []
    private let server: KubeAPITestServer

    init(server: KubeAPITestServer) {
        self.server = server
    }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        guard server.authorized(upgradeRequest.headers) else {
            return channel.eventLoop.makeFailedFuture(APIStatusError.unauthorized)
        }
        server.record(upgradeRequest)
        return channel.eventLoop.makeSucceededFuture(initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        context.eventLoop.makeCompletedFuture {
            let pipeline = context.pipeline.syncOperations
            _ = try pipeline.removeHandler(context: pipeline.context(handlerType: APIConnectionHandler.self))
            try pipeline.addHandler(EchoHandler())
        }
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }
}
