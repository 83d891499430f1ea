// Element Web's engine against Schulhof over /v3/sync: log in, create a room,
// invite, join, send and receive (users[0] and users[1]).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { login, started, waitFor, bodies } from "./helpers.mjs";

const clients = [];
after(() => clients.forEach((c) => c.stopClient()));

test("log in, open a room, send and receive", async () => {
  const alice = await started(await login(0));
  const bob = await started(await login(1));
  clients.push(alice, bob);
  assert.ok((await alice.whoami()).user_id.startsWith("@"));

  const { room_id: roomId } = await alice.createRoom({ name: "Klassenrat js", invite: [bob.getUserId()] });
  await waitFor(bob, () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
  await bob.joinRoom(roomId);

  await alice.sendTextMessage(roomId, "Hallo aus matrix-js-sdk");
  await waitFor(bob, () => bodies(bob, roomId).includes("Hallo aus matrix-js-sdk"),
    "alice's message at bob");
  await bob.sendTextMessage(roomId, "Antwort");
  await waitFor(alice, () => bodies(alice, roomId).includes("Antwort"), "bob's reply at alice");
  assert.equal(alice.getRoom(roomId).name, "Klassenrat js");
});
