// Package chat provides p2pd's chat: a line protocol between peers that
// share a room, and a terminal front end for it.
//
// A room is a rendezvous string. Room speaks the protocol ProtocolID over the
// streams of a libp2p host: it keeps one session per peer in the room,
// broadcasts each line given to Send to every session, and reports peers
// joining and leaving and the lines they send as Events. Terminal reads lines
// from an input (stdin), hands them to a Room and prints what the Room
// reports, either as plain lines for scripts or with a prompt, line editing
// and colour in a terminal.
//
// # Protocol
//
// A session is one stream of ProtocolID. The side that opens it writes
//
//	hello <room key>\n
//
// where the room key is the hex SHA-256 of "p2pd-chat-room\x00" followed by
// the room string, so a peer learns which room we are in only if it is in
// the same room. The other side answers "welcome\n", or "refused <reason>\n"
// and closes the stream. After the welcome, each line in either direction is
// one message: UTF-8 text of at most the size limit (MaxLineBytes) and a
// "\n". Longer lines are refused: Send returns ErrLineTooLong and a receiver
// skips them and reports a Notice. Received text is cleaned of control and
// bidirectional-override characters before it is handed out.
//
// Of two connected peers only the one with the smaller peer ID opens the
// session, so two peers that find each other at the same moment never end
// up with two streams. The opener opens as soon as identify shows the other
// peer speaks ProtocolID, and retries with a backoff while the connection
// lasts. A new session from a peer replaces the old one without a second
// join. PeerJoined and PeerLeft are therefore reported exactly once per
// session: joined when the handshake completes, left when its stream ends.
//
// ProtocolNickID (/p2pd/chat/1.1.0) is the same with nicknames: right after
// its handshake line ("hello ..." or "welcome") each side sends
// "nick <name>\n", the name possibly empty. A room serves both protocols and
// opens sessions with 1.1.0 when the peer speaks it, so older peers still
// talk to newer ones (without nicknames). A nickname is only a label: the
// terminal shows it beside the peer's short ID, never instead of it.
//
// # What it does not do
//
// The package does not find peers or dial them: the host's connections come
// from elsewhere (package discovery, or the caller). It keeps no history
// and does not authenticate rooms: anyone who knows the room
// string can join it. Messages travel over the connection's own encryption
// (TLS, Noise or QUIC) to each peer directly; nothing is relayed through other
// members.
package chat
