// Element Web's engine using the endpoints of spec v1.3-v1.6 that Schulhof now has:
// thread reply, edit, reaction, favourite tag and server-side search, each through
// matrix-js-sdk's own methods (users[4] and users[5]).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Direction, ThreadFilterType } from "matrix-js-sdk";
import { login, started, waitFor, bodies } from "./helpers.mjs";

const clients = [];
after(() => clients.forEach((c) => c.stopClient()));

async function sharedRoom() {
  const teacher = await started(await login(4));
  const pupil = await started(await login(5));
  clients.push(teacher, pupil);
  const { room_id: roomId } = await teacher.createRoom({
    name: "Projektwoche js", invite: [pupil.getUserId()] });
  await waitFor(pupil, () => pupil.getRoom(roomId)?.getMyMembership() === "invite",
    "the invite");
  await pupil.joinRoom(roomId);
  return { teacher, pupil, roomId };
}

test("thread reply, edit, reaction, favourite and search", async () => {
  const { teacher, pupil, roomId } = await sharedRoom();
  const { event_id: rootId } = await teacher.sendTextMessage(roomId, "Wer kommt mit ins Museum?");

  // Thread reply: sendMessage with a thread id adds the m.thread relation.
  const { event_id: replyId } = await pupil.sendMessage(roomId, rootId,
    { msgtype: "m.text", body: "Ich komme mit" });
  const thread = await teacher.relations(roomId, rootId, "m.thread");
  assert.deepEqual(thread.events.map((e) => e.getId()), [replyId]);
  const threads = await teacher.createThreadListMessagesRequest(roomId, null, 20,
    Direction.Backward, ThreadFilterType.All);
  assert.deepEqual(threads.chunk.map((e) => e.event_id), [rootId]);
  const mine = await pupil.createThreadListMessagesRequest(roomId, null, 20,
    Direction.Backward, ThreadFilterType.My);
  assert.deepEqual(mine.chunk.map((e) => e.event_id), [rootId]);

  // Edit: the newest edit is bundled with the original, whose content stays.
  const { event_id: editId } = await teacher.sendEvent(roomId, "m.room.message", {
    msgtype: "m.text", body: "* Wer kommt am Freitag mit ins Museum?",
    "m.new_content": { msgtype: "m.text", body: "Wer kommt am Freitag mit ins Museum?" },
    "m.relates_to": { rel_type: "m.replace", event_id: rootId },
  });
  // Reaction.
  await pupil.sendEvent(roomId, "m.reaction",
    { "m.relates_to": { rel_type: "m.annotation", event_id: rootId, key: "👍" } });
  const reactions = await teacher.relations(roomId, rootId, "m.annotation", "m.reaction");
  assert.deepEqual(reactions.events.map((e) => e.getRelation().key), ["👍"]);

  const root = await pupil.fetchRoomEvent(roomId, rootId);
  assert.equal(root.content.body, "Wer kommt mit ins Museum?");
  const bundle = root.unsigned["m.relations"];
  assert.equal(bundle["m.replace"].event_id, editId);
  assert.equal(bundle["m.thread"].count, 1);
  assert.equal(bundle["m.thread"].latest_event.event_id, replyId);
  assert.equal(bundle["m.thread"].current_user_participated, true);

  // The edit and the reply reach the pupil's timeline as the SDK shows it.
  await waitFor(pupil, () => pupil.getRoom(roomId)?.findEventById(rootId)
    ?.replacingEventId() === editId, "the edit applied at the pupil");

  // Favourite tag: set through the SDK, seen in the room's tags after /sync.
  await pupil.setRoomTag(roomId, "m.favourite", { order: 0.5 });
  await waitFor(pupil, () => pupil.getRoom(roomId)?.tags?.["m.favourite"]?.order === 0.5,
    "the favourite tag in sync");
  assert.deepEqual((await pupil.getRoomTags(roomId)).tags, { "m.favourite": { order: 0.5 } });
  await pupil.deleteRoomTag(roomId, "m.favourite");
  await waitFor(pupil, () => !pupil.getRoom(roomId)?.tags?.["m.favourite"],
    "the favourite tag removed");

  // Server-side search.
  await teacher.sendTextMessage(roomId, "Treffpunkt ist der Haupteingang");
  await waitFor(pupil, () => bodies(pupil, roomId).includes("Treffpunkt ist der Haupteingang"),
    "the last message");
  const found = await pupil.searchRoomEvents({ term: "museum" });
  // The SDK shows the root with its bundled edit applied; the edit itself matches too.
  const hits = found.results.map((r) => r.context.getEvent());
  const rootHit = hits.find((e) => e.getId() === rootId);
  assert.ok(rootHit, JSON.stringify(hits.map((e) => e.getId())));
  assert.equal(rootHit.getContent().body, "Wer kommt am Freitag mit ins Museum?");
  const none = await pupil.searchRoomEvents({ term: "Schwimmbad" });
  assert.equal(none.results.length, 0);
});
