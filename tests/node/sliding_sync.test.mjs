// matrix-js-sdk's SlidingSync class against Schulhof's simplified sliding sync
// (MSC4186, POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync):
// the room list, opening a room (a room subscription), sending and receiving
// (users[2] and users[3]).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";
import { baseUrl, login, started, waitFor, bodies } from "./helpers.mjs";

const clients = [];
after(() => clients.forEach((c) => c.stopClient()));

const ROOM_LIST = {
  ranges: [[0, 19]],
  timeline_limit: 1,
  required_state: [["m.room.name", ""], ["m.room.avatar", ""], ["m.room.create", ""],
    ["m.room.encryption", ""], ["m.room.member", "$ME"], ["m.room.member", "$LAZY"]],
};
const OPEN_ROOM = { timeline_limit: 20, required_state: [["*", "*"]] };

test("SlidingSync: room list by recency, open a room, send and receive", async () => {
  const alice = await started(await login(2));
  clients.push(alice);
  const bob = await login(3);
  clients.push(bob);
  const lobby = await alice.createRoom({ name: "Lehrerzimmer", invite: [bob.getUserId()] });
  const other = await alice.createRoom({ name: "Elternabend", invite: [bob.getUserId()] });
  await bob.joinRoom(lobby.room_id);
  await bob.joinRoom(other.room_id);
  await alice.sendTextMessage(lobby.room_id, "zuerst");
  await alice.sendTextMessage(other.room_id, "zuletzt");  // other is now the newest

  const responses = [];
  const sliding = new SlidingSync(baseUrl, new Map([["all", ROOM_LIST]]), OPEN_ROOM, bob, 5000);
  sliding.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
    // A copy before the SDK consumes it.
    if (state === SlidingSyncState.RequestFinished && resp) {
      responses.push(JSON.parse(JSON.stringify(resp)));
    }
    if (err) responses.push({ error: err });
  });
  await bob.startClient({ slidingSync: sliding });

  // The room list: both rooms, counted, the newest first by bump_stamp.
  await waitFor(bob, () => bob.getRoom(lobby.room_id) && bob.getRoom(other.room_id),
    "both rooms in bob's room list");
  assert.equal(sliding.getListData("all").joinedCount, 2);
  const first = responses.find((r) => r.rooms?.[other.room_id]);
  assert.ok(first, "a response with the rooms");
  assert.ok(first.rooms[other.room_id].bump_stamp > first.rooms[lobby.room_id].bump_stamp);
  assert.equal(bob.getRoom(other.room_id).name, "Elternabend");
  assert.deepEqual(bodies(bob, other.room_id), ["zuletzt"]);  // timeline_limit 1

  // Opening a room: a subscription with a longer timeline and all state.
  sliding.modifyRoomSubscriptions(new Set([lobby.room_id]));
  await waitFor(bob, () => bob.getRoom(lobby.room_id).currentState
    .getStateEvents("m.room.power_levels", "") !== null, "the opened room's full state");

  // Receive: alice's new message arrives through the long-poll.
  await alice.sendTextMessage(lobby.room_id, "Hallo über sliding sync");
  await waitFor(bob, () => bodies(bob, lobby.room_id).includes("Hallo über sliding sync"),
    "alice's message through sliding sync");
  // Send: bob's message reaches alice (on /v3/sync).
  await bob.sendTextMessage(lobby.room_id, "Antwort über sliding sync");
  await waitFor(alice, () => bodies(alice, lobby.room_id).includes("Antwort über sliding sync"),
    "bob's reply at alice");
  // The lobby moved to the top of the list: its bump_stamp is now the highest.
  const latest = responses.filter((r) => r.rooms?.[lobby.room_id]?.bump_stamp).at(-1);
  assert.ok(latest.rooms[lobby.room_id].bump_stamp > first.rooms[other.room_id].bump_stamp);
  assert.ok(!responses.some((r) => r.error), "no failed sliding sync request");
});
