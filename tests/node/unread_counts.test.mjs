// Unread notification counts as Element Web's engine reads them
// (room.getUnreadNotificationCount, from /v3/sync's unread_notifications): they
// rise with messages and mentions by others and drop after a read receipt
// (users[6] and users[7]).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { NotificationCountType } from "matrix-js-sdk";
import { login, started, waitFor, bodies } from "./helpers.mjs";

const clients = [];
after(() => clients.forEach((c) => c.stopClient()));

function counts(client, roomId) {
  const room = client.getRoom(roomId);
  return room ? [room.getUnreadNotificationCount(NotificationCountType.Total),
    room.getUnreadNotificationCount(NotificationCountType.Highlight)] : [-1, -1];
}

async function countsReach(client, roomId, expected, what) {
  await waitFor(client, () => {
    const [total, highlight] = counts(client, roomId);
    return total === expected[0] && highlight === expected[1];
  }, `${what}: counts ${expected} (have ${counts(client, roomId)})`);
}

test("unread counts rise with messages and mentions and drop after a receipt", async () => {
  const alice = await started(await login(6));
  const bob = await started(await login(7));
  clients.push(alice, bob);
  const { room_id: roomId } = await alice.createRoom({
    name: "Zählraum js", invite: [bob.getUserId()] });
  await waitFor(bob, () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  await bob.joinRoom(roomId);
  await waitFor(alice, () => alice.getRoom(roomId)?.getJoinedMemberCount() === 2, "bob joined");

  await alice.sendTextMessage(roomId, "Erste Nachricht");
  await alice.sendTextMessage(roomId, "Zweite Nachricht");
  await countsReach(bob, roomId, [2, 0], "two messages");
  // A mention (m.mentions, as Element sends it) highlights.
  const { event_id: mention } = await alice.sendMessage(roomId, {
    msgtype: "m.text", body: "Bitte antworten", "m.mentions": { user_ids: [bob.getUserId()] } });
  await countsReach(bob, roomId, [3, 1], "a mention");
  // Alice's own messages never count for her.
  assert.deepEqual(counts(alice, roomId), [0, 0]);

  await waitFor(bob, () => bob.getRoom(roomId).findEventById(mention), "the mention at bob");
  await bob.sendReadReceipt(bob.getRoom(roomId).findEventById(mention));
  await countsReach(bob, roomId, [0, 0], "after the receipt");
  // The server counts afresh from the receipt: one new message is one.
  await alice.sendTextMessage(roomId, "Dritte Nachricht");
  await waitFor(bob, () => bodies(bob, roomId).includes("Dritte Nachricht"), "the third");
  await countsReach(bob, roomId, [1, 0], "a message after the receipt");
});
