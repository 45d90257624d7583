// vcalld browser client: joins a room with camera and microphone, one RTCPeerConnection per
// remote participant. The newcomer offers to everyone already in the room, and only it ever
// offers: the other side asks it to with a "renegotiate" signal (vcalld turning its video on
// or off), so two offers never cross. A pair's connections are numbered ("connection" in
// every signal): one that fails is replaced by the next, which the offerer offers, on its own
// failure or when the other side asks with a "restart" signal naming the failed one.
"use strict";

const vcall = {
  id: null,
  room: null,
  ws: null,
  localStream: null,
  iceServers: [],
  peers: new Map(), // participant id -> {pc, name, tile, stream}
  log: [],
  errors: [],
};
window.vcall = vcall;

const $ = (id) => document.getElementById(id);

function setStatus(text) {
  $("status").textContent = text;
  vcall.log.push(text);
}

function send(message) {
  if (vcall.ws && vcall.ws.readyState === WebSocket.OPEN) vcall.ws.send(JSON.stringify(message));
}

function addTile(id, name) {
  const figure = document.createElement("figure");
  figure.className = "tile";
  figure.id = "tile-" + id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  const caption = document.createElement("figcaption");
  caption.textContent = name;
  figure.append(video, caption);
  $("tiles").append(figure);
  return figure;
}

function createPeer(participant, number = 0) {
  const pc = new RTCPeerConnection({ iceServers: vcall.iceServers });
  const stream = new MediaStream();
  const tile = addTile(participant.id, participant.name);
  tile.querySelector("video").srcObject = stream;
  const peer = {
    pc, name: participant.name, tile, stream, number, queue: Promise.resolve(), offerer: false, offerAgain: false,
  };
  vcall.peers.set(participant.id, peer);
  for (const track of vcall.localStream.getTracks()) pc.addTrack(track, vcall.localStream);
  pc.ontrack = (event) => {
    if (isScreen(pc, event.transceiver)) showScreen(peer, event.track);
    else stream.addTrack(event.track);
  };
  pc.onicecandidate = (event) => {
    const candidate = event.candidate ? event.candidate.toJSON() : null;
    signal(participant.id, peer, { candidate });
  };
  pc.onconnectionstatechange = () => {
    setStatus(`${participant.name}: ${pc.connectionState}`);
    if (pc.connectionState === "failed" && vcall.peers.get(participant.id) === peer) {
      if (peer.offerer) restart(participant.id, peer).catch(reportError);
      else signal(participant.id, peer, { restart: peer.number });
    }
  };
  return peer;
}

function signal(to, peer, data) {
  send({ type: "signal", to, data: { ...data, connection: peer.number } });
}

// The pair's next connection, made by the side that offers.
function restart(id, failed) {
  closePeer(id);
  return offerTo({ id, name: failed.name }, failed.number + 1);
}

// A participant's second video track is the screen they share (vcalld's
// [screen_share] second_track): a tile of its own, shown while its frames come.
function isScreen(pc, transceiver) {
  const videos = pc.getTransceivers().filter((t) => t.receiver.track.kind === "video");
  return videos.indexOf(transceiver) === 1;
}

function showScreen(peer, track) {
  if (!peer.screenTile) {
    peer.screenTile = addTile(peer.tile.id.slice("tile-".length) + "-screen", `${peer.name}'s screen`);
    peer.screenTile.classList.add("screen");
    peer.screenTile.querySelector("video").srcObject = new MediaStream([track]);
  }
  const tile = peer.screenTile;
  tile.hidden = track.muted;
  track.onmute = () => { tile.hidden = true; };
  track.onunmute = () => { tile.hidden = false; };
}

function closePeer(id) {
  const peer = vcall.peers.get(id);
  if (!peer) return;
  peer.pc.close();
  peer.tile.remove();
  if (peer.screenTile) peer.screenTile.remove();
  vcall.peers.delete(id);
}

async function offerTo(participant, number = 0) {
  const peer = createPeer(participant, number);
  peer.offerer = true;
  // Room for the far end's shared screen: an answer cannot add an m-line.
  peer.pc.addTransceiver("video", { direction: "recvonly" });
  await offer(participant.id, peer);
  return peer;
}

async function offer(id, peer) {
  // An offer awaiting its answer is followed by another once the answer is in.
  peer.offerAgain = peer.pc.signalingState !== "stable";
  if (peer.offerAgain) return;
  await peer.pc.setLocalDescription(await peer.pc.createOffer());
  signal(id, peer, { description: peer.pc.localDescription.toJSON() });
}

async function handleSignal(from, data) {
  const number = data.connection || 0;
  let peer = vcall.peers.get(from);
  if (!peer) peer = createPeer({ id: from, name: vcall.names.get(from) || from }, number);
  if (data.restart !== undefined) {
    if (peer.offerer && data.restart === peer.number) await restart(from, peer);
    return;
  }
  if (number > peer.number && data.description && data.description.type === "offer") {
    closePeer(from);  // the far end offers the pair's next connection
    peer = createPeer({ id: from, name: peer.name }, number);
  } else if (number !== peer.number) {
    return;  // about a connection already replaced
  }
  if (data.description) {
    await peer.pc.setRemoteDescription(data.description);
    if (data.description.type === "offer") {
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      signal(from, peer, { description: peer.pc.localDescription.toJSON() });
    } else if (peer.offerAgain) {
      await offer(from, peer);
    }
  } else if (data.candidate) {
    await peer.pc.addIceCandidate(data.candidate);
  } else if (data.renegotiate === true && peer.offerer) {
    await offer(from, peer);
  }
}

vcall.names = new Map();

function onMessage(event) {
  const message = JSON.parse(event.data);
  switch (message.type) {
    case "joined":
      vcall.id = message.id;
      vcall.iceServers = message.ice_servers || [];
      setStatus(`In room ${message.room} with ${message.participants.length} other(s)`);
      for (const participant of message.participants) {
        vcall.names.set(participant.id, participant.name);
        offerTo(participant).catch(reportError);
      }
      break;
    case "participant-joined":
      vcall.names.set(message.participant.id, message.participant.name);
      setStatus(`${message.participant.name} joined`);
      break;
    case "participant-left":
      closePeer(message.id);
      setStatus(`${vcall.names.get(message.id) || message.id} left`);
      break;
    case "signal": {
      // Signals of one peer are applied in order: a candidate must not overtake its offer.
      const peer = vcall.peers.get(message.from);
      const run = () => handleSignal(message.from, message.data).catch(reportError);
      if (peer) peer.queue = peer.queue.then(run);
      else run();
      break;
    }
    case "error":
      reportError(new Error(`${message.code}: ${message.message}`));
      break;
  }
}

function reportError(error) {
  vcall.errors.push(String(error));
  setStatus(String(error));
}

async function join(room, name) {
  // ?audio_processing=off sends the microphone as it is (music, a line input, test tones):
  // echo cancellation, noise suppression and gain control are made for voices and fade a
  // steady tone away.
  const processing = params.get("audio_processing") !== "off";
  const audio = {
    echoCancellation: processing,
    noiseSuppression: processing,
    autoGainControl: processing,
  };
  vcall.localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio });
  $("self-video").srcObject = vcall.localStream;
  $("self-tile").hidden = false;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  vcall.ws = new WebSocket(`${scheme}://${location.host}/ws`);
  vcall.room = room;
  // The room token comes in the fragment (#token=...), which browsers never send to a server,
  // so it stays out of access logs and Referer headers.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  vcall.ws.onopen = () => send({ type: "join", room, name, ...(token ? { token } : {}) });
  vcall.ws.onmessage = onMessage;
  vcall.ws.onclose = () => {
    for (const id of [...vcall.peers.keys()]) closePeer(id);
    setStatus("Disconnected from the room server");
  };
  $("join-form").hidden = true;
  $("controls").hidden = false;
}

function leave() {
  send({ type: "leave" });
  if (vcall.ws) vcall.ws.close();
  for (const id of [...vcall.peers.keys()]) closePeer(id);
  if (vcall.localStream) for (const track of vcall.localStream.getTracks()) track.stop();
  $("self-tile").hidden = true;
  $("join-form").hidden = false;
  $("controls").hidden = true;
  setStatus("Left the call");
}

function toggle(kind, button, onText, offText) {
  const tracks = kind === "audio" ? vcall.localStream.getAudioTracks() : vcall.localStream.getVideoTracks();
  const muting = tracks.length > 0 && tracks[0].enabled;
  for (const track of tracks) track.enabled = !muting;
  button.setAttribute("aria-pressed", String(muting));
  button.textContent = muting ? onText : offText;
}

// Summary for tests and diagnostics: per participant, what getStats says arrived and left.
vcall.stats = async () => {
  const result = {};
  for (const [id, peer] of vcall.peers) {
    const entry = { name: peer.name, state: peer.pc.connectionState, inbound: {}, outbound: {} };
    const report = await peer.pc.getStats();
    report.forEach((stat) => {
      if (stat.type === "inbound-rtp") {
        entry.inbound[stat.kind] = {
          framesDecoded: stat.framesDecoded, frameWidth: stat.frameWidth, frameHeight: stat.frameHeight,
          framesPerSecond: stat.framesPerSecond, totalSamplesReceived: stat.totalSamplesReceived,
          audioLevel: stat.audioLevel, packetsReceived: stat.packetsReceived,
          packetsLost: stat.packetsLost, concealedSamples: stat.concealedSamples,
          silentConcealedSamples: stat.silentConcealedSamples, fecPacketsReceived: stat.fecPacketsReceived,
          jitterBufferDelay: stat.jitterBufferDelay, jitterBufferEmittedCount: stat.jitterBufferEmittedCount,
        };
      } else if (stat.type === "outbound-rtp") {
        entry.outbound[stat.kind] = {
          packetsSent: stat.packetsSent, framesEncoded: stat.framesEncoded,
          bytesSent: stat.bytesSent, targetBitrate: stat.targetBitrate,
          frameWidth: stat.frameWidth, frameHeight: stat.frameHeight,
          framesPerSecond: stat.framesPerSecond, qualityLimitationReason: stat.qualityLimitationReason,
        };
      }
    });
    result[id] = entry;
  }
  return result;
};

const params = new URLSearchParams(location.search);
$("room").value = params.get("room") || "demo";
$("name").value = params.get("name") || "browser";
$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join($("room").value, $("name").value).catch(reportError);
});
$("leave").addEventListener("click", leave);
$("mute-audio").addEventListener("click", (e) => toggle("audio", e.target, "Unmute microphone", "Mute microphone"));
$("mute-video").addEventListener("click", (e) => toggle("video", e.target, "Start camera", "Stop camera"));
if (params.get("autojoin") === "1") join($("room").value, $("name").value).catch(reportError);
