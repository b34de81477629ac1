import { z } from "zod";
import { IdSchema, TimestampSchema } from "./common.js";

/** Topics published to operators (FleetFeed) and subscribers (QStash). */
export const EVENT_TOPICS = [
  "host.online",
  "host.suspect",
  "host.offline",
  "host.stale",
  "session.starting",
  "session.running",
  "session.stopping",
  "session.stopped",
  "session.crashed",
  "command.completed",
  "command.failed",
  "command.timed_out",
  "command.canceled",
  "command.expired",
  "alert.triggered",
  "alert.resolved",
  "service.updated",
  "device.online",
  "device.offline",
] as const;
export const EventTopicSchema = z.enum(EVENT_TOPICS);
export type EventTopic = z.infer<typeof EventTopicSchema>;

/** A topic filter: an exact topic, `prefix.*`, or `*`. */
export const TopicFilterSchema = z
  .string()
  .regex(/^(\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)$/, "topics look like host.stale, host.* or *");

export function topicMatches(filter: string, topic: string): boolean {
  if (filter === "*") return true;
  if (filter.endsWith(".*")) return topic.startsWith(filter.slice(0, -1));
  return filter === topic;
}

export const FleetEventSchema = z.object({
  id: IdSchema,
  topic: EventTopicSchema,
  clientId: IdSchema.nullable(),
  at: TimestampSchema,
  data: z.record(z.string(), z.unknown()),
});
export type FleetEvent = z.infer<typeof FleetEventSchema>;
