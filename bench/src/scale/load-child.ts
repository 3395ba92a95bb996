// The writer load in a process of its own, so its work does not hold up the event loop that
// times the reads. Started by scale.ts with fork(); sends "ready", stops on "stop" and answers with
// its counts.
import { createPrisma } from "../../../packages/db/src/index.ts";
import { startWriterLoad } from "./load.ts";

const [databaseUrl, batchId, bucket, rate, writers] = process.argv.slice(2);
const prisma = createPrisma({ databaseUrl: databaseUrl!, poolMax: Number(writers) + 2 });
const load = startWriterLoad({ prisma, batchId: batchId!, bucket: bucket!, pagesPerSecond: Number(rate), concurrency: Number(writers) });
process.send?.({ ready: true });
process.on("message", (msg: { stop?: boolean }) => {
  if (!msg.stop) return;
  void load.stop().then(async (result) => {
    await prisma.$disconnect();
    process.send?.({ result }, () => process.exit(0));
  });
});
