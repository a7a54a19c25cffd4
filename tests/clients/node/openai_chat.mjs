// The OpenAI Node SDK streams a chat completion through Tollway; prints the reported usage as JSON.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.TOLLWAY_URL}/v1`, apiKey: process.env.TOLLWAY_KEY, maxRetries: 0 });
const stream = await client.chat.completions.create({
  model: process.argv[2] ?? "demo",
  messages: [{ role: "user", content: "Say hello in five words." }],
  stream: true,
  stream_options: { include_usage: true },
});
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
}
const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
console.log(JSON.stringify({
  input: usage.prompt_tokens - cached,
  cache_read: cached,
  cache_write: 0,
  output: usage.completion_tokens,
}));
