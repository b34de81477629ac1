/**
 * prom-client's Registry, Counter, Gauge and Histogram, each from its own file. The package's
 * index also loads its Pushgateway (node:http, node:https, node:zlib), its cluster aggregator
 * (node:cluster) and @opentelemetry/api, which the agent never uses and which cost resident
 * memory in every agent (bench/agent-footprint).
 */
import type * as PromClient from "prom-client";
import CounterClass from "prom-client/lib/counter.js";
import GaugeClass from "prom-client/lib/gauge.js";
import HistogramClass from "prom-client/lib/histogram.js";
import RegistryClass from "prom-client/lib/registry.js";

export const Registry = RegistryClass as typeof PromClient.Registry;
export const Counter = CounterClass as typeof PromClient.Counter;
export const Gauge = GaugeClass as typeof PromClient.Gauge;
export const Histogram = HistogramClass as typeof PromClient.Histogram;
export type Registry = PromClient.Registry;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
