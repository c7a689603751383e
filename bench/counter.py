# The Python anchor of `scripts/bench.sh wordcount`: collections.Counter over
# whitespace-split, lower-cased lines; prints the 10 most common words.
import collections, sys
c = collections.Counter()
with open(sys.argv[1], 'rb') as f:
    for line in f:
        c.update(line.lower().split())
for w, n in c.most_common(10):
    print(n, w.decode('utf-8', 'replace'))
