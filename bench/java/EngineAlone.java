import io.debezium.embedded.Connect;
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.engine.format.Json;
import java.io.FileReader;
import java.io.IOException;
import java.io.Reader;
import java.time.Instant;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * The cdc benchmark's peer: the Debezium embedded engine alone, with a consumer that only counts.
 *
 * <p>Usage: {@code EngineAlone <engine.properties> <topic> <connect|json>}. The engine runs the
 * connector configured in the properties file (written by bench/engine_alone.py from the bench's
 * own connector); its consumer counts the change records whose topic is {@code <topic>} (and marks
 * them processed, as every consumer must), noting when the first and the latest arrived. With
 * {@code connect} the records reach the consumer as Kafka Connect SourceRecords, unserialized; with
 * {@code json} as JSON strings (Kafka Connect's JsonConverter, as a Connect worker writes them).
 *
 * <p>Standard output carries one JSON object per line, nothing else: {@code {"event": "polling"}}
 * once the connector's task polls, {@code {"event": "progress", "count": n, "first_at": t,
 * "last_at": t}} at most every 10 ms while the count moves (times are Unix seconds at microsecond
 * resolution, taken when the batch reached the consumer), {@code {"event": "stopped", ...}} last.
 * Logs go to standard error. The engine stops when standard input closes (the bench closes it; a
 * bench that dies closes it too).
 */
public final class EngineAlone {
    private static final class Counter {
        private long count;
        private double firstAt;
        private double lastAt;

        synchronized void add(int n) {
            if (n == 0) {
                return;
            }
            double now = now();
            if (count == 0) {
                firstAt = now;
            }
            count += n;
            lastAt = now;
        }

        synchronized String json(String event) {
            return String.format(
                    java.util.Locale.ROOT,
                    "{\"event\": \"%s\", \"count\": %d, \"first_at\": %.6f, \"last_at\": %.6f}",
                    event,
                    count,
                    firstAt,
                    lastAt);
        }

        synchronized long count() {
            return count;
        }
    }

    private static double now() {
        Instant at = Instant.now();
        return at.getEpochSecond() + at.getNano() / 1e9;
    }

    /** {@code text} as a JSON string. */
    private static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static <R> DebeziumEngine.ChangeConsumer<R> counting(
            Counter counter, Function<R, Boolean> counts) {
        return (records, committer) -> {
            int n = 0;
            for (R record : records) {
                if (counts.apply(record)) {
                    n++;
                }
                committer.markProcessed(record);
            }
            counter.add(n);
            committer.markBatchFinished();
        };
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3 || !List.of("connect", "json").contains(args[2])) {
            System.err.println("usage: EngineAlone <engine.properties> <topic> <connect|json>");
            System.exit(2);
        }
        Properties config = new Properties();
        try (Reader in = new FileReader(args[0], java.nio.charset.StandardCharsets.UTF_8)) {
            config.load(in);
        }
        String topic = args[1];
        Counter counter = new Counter();
        DebeziumEngine.ConnectorCallback callbacks =
                new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void pollingStarted() {
                        emit("{\"event\": \"polling\"}");
                    }
                };
        String[] failure = {null};
        DebeziumEngine.CompletionCallback completion =
                (success, message, error) -> {
                    if (!success) {
                        failure[0] = message + (error != null ? ": " + error : "");
                        System.err.println("engine failed: " + failure[0]);
                    }
                };
        DebeziumEngine<?> engine;
        if (args[2].equals("connect")) {
            engine =
                    DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
                            .using(config)
                            .using(callbacks)
                            .using(completion)
                            .notifying(
                                    EngineAlone.<RecordChangeEvent<SourceRecord>>counting(
                                            counter,
                                            r ->
                                                    topic.equals(r.record().topic())
                                                            && r.record().value() != null))
                            .build();
        } else {
            engine =
                    DebeziumEngine.create(Json.class)
                            .using(config)
                            .using(callbacks)
                            .using(completion)
                            .notifying(
                                    EngineAlone.<ChangeEvent<String, String>>counting(
                                            counter,
                                            r -> topic.equals(r.destination()) && r.value() != null))
                            .build();
        }
        ExecutorService runner = Executors.newSingleThreadExecutor();
        runner.execute(engine);
        Thread reporter =
                new Thread(
                        () -> {
                            long shown = 0;
                            while (!Thread.currentThread().isInterrupted()) {
                                long count = counter.count();
                                if (count != shown) {
                                    emit(counter.json("progress"));
                                    shown = count;
                                }
                                try {
                                    Thread.sleep(10);
                                } catch (InterruptedException e) {
                                    return;
                                }
                            }
                        },
                        "progress");
        reporter.setDaemon(true);
        reporter.start();
        Thread watcher =
                new Thread(
                        () -> {
                            try {
                                while (System.in.read() != -1) {
                                    // Nothing is read from stdin: its end is the signal to stop.
                                }
                            } catch (IOException e) {
                                // A broken stdin means the same: the bench is gone.
                            }
                            try {
                                engine.close();
                            } catch (IOException e) {
                                System.err.println("closing the engine: " + e);
                            }
                        },
                        "stdin");
        watcher.setDaemon(true);
        watcher.start();
        runner.shutdown();
        // The engine's run() returns when it is closed or fails.
        while (!runner.awaitTermination(1, TimeUnit.SECONDS)) {
            // wait
        }
        reporter.interrupt();
        reporter.join();
        String stopped = counter.json("stopped");
        if (failure[0] != null) {
            stopped = stopped.substring(0, stopped.length() - 1) + ", \"error\": " + quote(failure[0]) + "}";
        }
        emit(stopped);
        System.exit(failure[0] == null ? 0 : 1);
    }
}
