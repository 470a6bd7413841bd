"""The node agent: kernel events from the sensors, attributed to pods, through the rules to alerts."""
