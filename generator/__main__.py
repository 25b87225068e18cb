from generator.launch import entry

entry()
