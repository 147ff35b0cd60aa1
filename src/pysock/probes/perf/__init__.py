"""perf: throughput and request/response latency, speaking iperf3's control protocol.

protocol  the control connection: cookie, state bytes, length-prefixed JSON
streams   the data streams: TCP and Unix senders and receivers, their counters
server    many tests at once behind one listening port
client    one test against an iperf3 or pysock server
results   interval and summary records, iperf3's -J document
rr        request/response latency (pysock to pysock)
"""
